"""Where the admitted p99 of ``gateway_overload`` comes from, step by step.

Three agents, a fresh ``ecsgrpc gateway`` pinned to the first core (agents and
this load generator on the others, as the bench places them), ``S`` from the
12-client closed loop, then open loop at each ``--steps`` multiple of ``S``.
Per step, for the 200s: latency from the scheduled arrival (what the bench
reports) split into the load generator's own delay (schedule to the request's
write) and the rest (write to the whole answer read); and, from inside the
gateway (a ``sitecustomize`` on its ``PYTHONPATH`` that records the limiter,
measurement only), the admitted conversations' time to first event (the
limiter's sample: admission to reply), the limit, the windows' peak and mean
in flight, the baseline and the event loop's lag. "after 1st s" is the p99 of
the 200s sent after the step's first second (the steady state, without the
windows in which the limit meets the new load), "limit first" the limit when
the step's first window closed. The difference between
"write to answer" and the time to first event is what happens before
admission (accept, read, parse, the event loop's queue) and after the reply
(its write, the network, the load generator's read).

    flock /tmp/ecsgrpc-measure.lock .venv/bin/python scripts/p99_probe.py \\
        --variant this --variant little=,GATEWAY_...=... --seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway_bench_setup import Variant, pinned_agents

from ecsgrpc_apps.bench.gateway_overload import GatewayProcess, HttpLoad, Outcome, pin

_SITE = """
import json, os, time
_out = open(os.environ["P99_PROBE_OUT"], "a", buffering=1 << 16)
from ecsgrpc_apps.gateway import limiter as _m
_release, _update, _tick = _m.AdaptiveLimit.release, _m.AdaptiveLimit._update, _m.LagMonitor._tick
_lags = []
def release(self, latency):
    if latency is not None:
        _out.write(f"s {time.monotonic():.4f} {latency:.5f}\\n")
    _release(self, latency)
def _upd(self, mean, peak, refusals):
    before = self._limit
    _update(self, mean, peak, refusals)
    lag = max(_lags) if _lags else 0.0
    _lags.clear()
    _out.write(f"w {time.monotonic():.4f} {mean:.5f} {peak} {refusals:.3f} {before:.2f} "
               f"{self._limit:.2f} {self.baseline:.5f} {self.in_flight} {lag:.4f}\\n")
    _out.flush()
def tick(self, due):
    _tick(self, due)
    _lags.append(self.last_lag)
_m.AdaptiveLimit.release, _m.AdaptiveLimit._update, _m.LagMonitor._tick = release, _upd, tick
from ecsgrpc_apps.gateway import connections as _c
_data, _complete = _c._Guard.data_received, _c._Guard.on_response_complete
def data_received(self, data):
    if self._head_bytes == 0 and self._awaiting_head():
        self._p99_t0 = time.monotonic()
    _data(self, data)
def on_response_complete(self):
    t0 = getattr(self, "_p99_t0", None)
    if t0 is not None:
        _out.write(f"g {time.monotonic():.4f} {time.monotonic() - t0:.5f}\\n")
        self._p99_t0 = None
    _complete(self)
_c._Guard.data_received, _c._Guard.on_response_complete = data_received, on_response_complete
"""


class TimedLoad(HttpLoad):
    """:class:`HttpLoad` that also records each request's send delay (schedule to write)."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.delays: list[tuple[float, float, int]] = []
        self.starts: list[tuple[float, float, int]] = []

    def start(self, started: float, record: Callable[[Outcome], None]) -> None:
        delay = time.perf_counter() - started

        def timed(outcome: Outcome) -> None:
            self.delays.append((delay, outcome.latency, outcome.status))
            self.starts.append((started, outcome.latency, outcome.status))
            record(outcome)

        super().start(started, timed)


def _q(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


def _gateway_side(path: Path, begin: float, end: float) -> dict[str, Any]:
    samples: list[float] = []
    whole: list[float] = []
    windows: list[list[float]] = []
    for line in path.read_text().splitlines():
        kind, at, *rest = line.split()
        if not begin <= float(at) <= end:
            continue
        if kind == "s":
            samples.append(float(rest[0]))
        elif kind == "g":
            whole.append(float(rest[0]))
        elif kind == "w":
            windows.append([float(x) for x in rest])
    out: dict[str, Any] = {
        "head->answered p50": _q(whole, 0.5),
        "p99": _q(whole, 0.99),
        "ttfe p50": _q(samples, 0.5),
        "ttfe p99": _q(samples, 0.99),
    }
    if windows:
        out["limit first"] = windows[0][3]
        out["limit med"] = statistics.median(w[4] for w in windows)
        out["peak med"] = statistics.median(w[1] for w in windows)
        out["base med"] = statistics.median(w[5] for w in windows) * 1000
        out["lag p99"] = _q([w[7] for w in windows], 0.99)
        out["windows"] = len(windows)
    return out


async def _run(env: dict[str, str], target: str, core: int, args: argparse.Namespace) -> list[str]:
    site = Path(tempfile.mkdtemp(prefix="p99probe-"))
    (site / "sitecustomize.py").write_text(_SITE)
    record = site / "record.txt"
    extra = {"P99_PROBE_OUT": str(record)}
    extra["PYTHONPATH"] = ":".join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    gateway = GatewayProcess(target, env={**env, **extra})
    await asyncio.to_thread(gateway.start)
    lines = [f"load {os.getloadavg()[0]:.1f}"]
    try:
        assert gateway.proc is not None
        pin(gateway.proc.pid, {core})
        load = TimedLoad(gateway.host, gateway.port)
        await load.closed_loop(12, args.warmup)
        t0 = time.perf_counter()
        done = await load.closed_loop(12, args.saturation_seconds)
        s = sum(o.status == 200 for o in done) / (time.perf_counter() - t0)
        lines.append(f"S {s:.0f}/s")
        for multiple in args.steps:
            await asyncio.sleep(args.pause)
            load.delays.clear()
            load.starts.clear()
            p0 = time.perf_counter()
            m0, c0 = time.monotonic(), gateway.cpu_seconds()
            outcomes, _ = await load.open_loop(multiple * s, args.seconds)
            m1, c1 = time.monotonic(), gateway.cpu_seconds()
            codes = Counter(o.status for o in outcomes)
            ok = [o.latency for o in outcomes if o.status == 200]
            delays = [d for d, _, code in load.delays if code == 200]
            rest = [lat - d for d, lat, code in load.delays if code == 200]
            steady = [lat for at, lat, code in load.starts if code == 200 and at >= p0 + 1]
            inside = _gateway_side(record, m0, m1 + 1)
            lines.append(
                f"{multiple:g}x good {codes[200] / args.seconds / s:.0%} 503 {codes[503]} "
                f"other {sum(v for k, v in codes.items() if k not in (200, 503))} "
                f"core {(c1 - c0) / (m1 - m0):.0%} | p50 {_q(ok, 0.5):.1f} p99 {_q(ok, 0.99):.1f}"
                f" (after 1st s {_q(steady, 0.99):.1f})"
                f" | send delay p50 {_q(delays, 0.5):.1f} p99 {_q(delays, 0.99):.1f}"
                f" | write->answer p50 {_q(rest, 0.5):.1f} p99 {_q(rest, 0.99):.1f} | "
                + " ".join(
                    f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in inside.items()
                )
            )
        load.close()
    finally:
        await asyncio.to_thread(gateway.stop)
    lines.append(f"load_end {os.getloadavg()[0]:.1f}")
    return lines


async def main(args: argparse.Namespace) -> None:
    variants = [Variant.parse(v) for v in args.variant or ["this"]]
    async with pinned_agents() as (target, core):
        for rnd in range(args.rounds):
            order = variants if rnd % 2 == 0 else variants[::-1]
            for variant in order:
                lines = await _run(variant.env, target, core, args)
                print(f"round {rnd} {variant.name}: " + "\n    ".join(lines), flush=True)
    print(f"end {time.strftime('%H:%M:%S', time.gmtime())} load {os.getloadavg()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--steps", type=float, nargs="+", default=[0.5, 1.5, 2.0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--saturation-seconds", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--pause", type=float, default=1.5)
    asyncio.run(main(parser.parse_args()))
