"""Gateway goodput past saturation, two (or more) code variants interleaved.

Three agents; then, for each round and each variant in turn (``--order``:
``abba``, the default, runs A B B A in every round; ``alternate`` A B then
B A in the next round; ``forward`` A B), a fresh
``ecsgrpc gateway`` process pinned to the first core (agents and this load
generator on the others, as ``gateway_overload`` places them), and on it the
``gateway_overload`` bench's measurements, shortened: a warm-up, the closed
loop of 12 clients that measures saturation ``S``, open loop at 1.5x and 2x
``S`` (``--seconds`` each), and the closed loop again after the steps (12
clients that re-send a 503 at once). Per run: ``S``, goodput at 1.5x / 2x and
its ratio to ``S``, 503s, the p99 of the 200s, how busy the gateway's core was
(its CPU seconds per second), the closed loop after the steps and its 503s,
the load average, and when each step began and ended on ``time.monotonic`` (to
line up with anything the gateway logged). "per CPU" is goodput per busy core
against ``S`` per busy core: on a shared machine the gateway's share of its
core moves with the other processes, and this ratio says how well the CPU it
got turned into served conversations (closed loop = 100 %). Then per variant
the medians.

With ``--trajectory`` the limiter's limit and working conversations are read
from ``/metrics`` every 0.1 s during the 2x step (this costs the gateway's
core about a scrape's CPU ten times a second: use it to look, not to compare).

A variant is ``NAME`` (this code) or ``NAME=SRC`` (``PYTHONPATH=SRC``, e.g. a
snapshot made with ``git archive main src | tar -x -C /tmp/main``), with
environment after commas: ``main=/tmp/main/src,GATEWAY_MIN_CONCURRENCY=8``.

    .venv/bin/python scripts/goodput_pairs.py --variant main=/tmp/main/src \\
        --variant new=/tmp/new/src --rounds 2 --seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import time
from collections import Counter
from typing import Any

from gateway_bench_setup import Variant, pinned_agents

from ecsgrpc_apps.bench.gateway_overload import GatewayProcess, HttpLoad, pin

CLIENTS = 12


_GAUGE = re.compile(
    rb"^ecsgrpc_gateway_(concurrency_limit|conversations_working) ([0-9.e+]+)$", re.M
)


async def _scrape(host: str, port: int, seen: list[tuple[float, float, float]]) -> None:
    """Every 0.1 s: (time, limit, working) from the gateway's /metrics, until cancelled."""
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET /metrics HTTP/1.1\r\nhost: {host}\r\n\r\n".encode()
    begin = time.perf_counter()
    try:
        while True:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            match = re.search(rb"content-length: *(\d+)", head, re.I)
            body = await reader.readexactly(int(match.group(1))) if match else b""
            values = {name: float(v) for name, v in _GAUGE.findall(body)}
            seen.append(
                (
                    time.perf_counter() - begin,
                    values.get(b"concurrency_limit", -1),
                    values.get(b"conversations_working", -1),
                )
            )
            await asyncio.sleep(0.1)
    finally:
        writer.close()


async def _closed(
    load: HttpLoad, gateway: GatewayProcess, seconds: float
) -> tuple[float, int, float]:
    """Closed loop: 200s per second, 503s, the gateway's core busy %."""
    cpu0, wall0 = gateway.cpu_seconds(), time.perf_counter()
    outcomes = await load.closed_loop(CLIENTS, seconds)
    busy = (gateway.cpu_seconds() - cpu0) / (time.perf_counter() - wall0) * 100
    codes = Counter(o.status for o in outcomes)
    return codes[200] / seconds, codes[503], busy


async def _run(
    variant: Variant, target: str, core: int, args: argparse.Namespace
) -> dict[str, Any]:
    gateway = GatewayProcess(target, env=variant.env)
    await asyncio.to_thread(gateway.start)
    out: dict[str, Any] = {"load": os.getloadavg()[0]}
    try:
        assert gateway.proc is not None
        pin(gateway.proc.pid, {core})
        load = HttpLoad(gateway.host, gateway.port)
        await load.closed_loop(CLIENTS, args.warmup)
        out["S"], _, out["S_busy"] = await _closed(load, gateway, args.saturation_seconds)
        for multiple in (1.5, 2.0):
            await asyncio.sleep(args.pause)
            seen: list[tuple[float, float, float]] = []
            scraper = None
            if args.trajectory and multiple == 2.0:
                scraper = asyncio.create_task(_scrape(gateway.host, gateway.port, seen))
            cpu0, wall0 = gateway.cpu_seconds(), time.perf_counter()
            out.setdefault("steps", []).append((f"{multiple:g}x", time.monotonic()))
            outcomes, _ = await load.open_loop(multiple * out["S"], args.seconds)
            out["steps"].append(("end", time.monotonic()))
            busy = (gateway.cpu_seconds() - cpu0) / (time.perf_counter() - wall0) * 100
            if scraper is not None:
                scraper.cancel()
                await asyncio.gather(scraper, return_exceptions=True)
                out["trajectory"] = seen
            codes = Counter(o.status for o in outcomes)
            out[f"{multiple:g}x"] = (codes[200] / args.seconds, codes[503], busy)
            served = sorted(o.latency for o in outcomes if o.status == 200)
            out[f"{multiple:g}x p99"] = served[int(len(served) * 0.99)] * 1000 if served else 0.0
        await asyncio.sleep(args.pause)
        out["after"] = await _closed(load, gateway, args.saturation_seconds)
        load.close()
    finally:
        await asyncio.to_thread(gateway.stop)
    out["load_end"] = os.getloadavg()[0]
    return out


def _line(rnd: int, name: str, r: dict[str, Any]) -> str:
    s = r["S"]
    parts = [
        f"round {rnd} {name:8s} load {r['load']:.1f}-{r['load_end']:.1f} "
        f"S {s:.0f}/s core {r['S_busy']:.0f}%"
    ]
    for case in ("1.5x", "2x"):
        good, refused, busy = r[case]
        per_cpu = good / busy / (s / r["S_busy"])
        parts.append(
            f"{case} {good:.0f}/s ({good / s:.0%}; per CPU {per_cpu:.0%}) 503 {refused} "
            f"core {busy:.0f}% p99 {r[case + ' p99']:.0f} ms"
        )
    parts.append(f"after {r['after'][0]:.0f}/s 503 {r['after'][1]} core {r['after'][2]:.0f}%")
    return " | ".join(parts)


def _trajectory(name: str, seen: list[tuple[float, float, float]]) -> None:
    if not seen:
        return
    limits = [lim for _, lim, _ in seen]
    working = [w for _, _, w in seen]
    print(
        f"  {name} 2x trajectory ({len(seen)} samples): limit min {min(limits):.0f} "
        f"median {statistics.median(limits):.0f} max {max(limits):.0f}; working mean "
        f"{statistics.mean(working):.1f}; at the limit in "
        f"{sum(w >= lim for _, lim, w in seen) / len(seen):.0%} of samples"
    )
    print("  " + " ".join(f"{lim:.0f}/{w:.0f}" for _, lim, w in seen))


async def main(args: argparse.Namespace) -> None:
    variants = [Variant.parse(v) for v in args.variant] or [Variant("this")]
    results: dict[str, list[dict[str, Any]]] = {}
    async with pinned_agents() as (target, core):
        for rnd in range(args.rounds):
            if args.order == "abba":
                order = variants + variants[::-1]
            elif args.order == "alternate" and rnd % 2:
                order = variants[::-1]
            else:
                order = variants
            for variant in order:
                r = await _run(variant, target, core, args)
                results.setdefault(variant.name, []).append(r)
                print(_line(rnd, variant.name, r), flush=True)
                if args.trajectory:
                    _trajectory(variant.name, r.get("trajectory", []))
                steps = ", ".join(f"{name} {at:.3f}" for name, at in r["steps"])
                print(f"  steps (time.monotonic): {steps}", flush=True)
    print(f"end {time.strftime('%H:%M:%S', time.gmtime())} load {os.getloadavg()}")
    for name, runs in results.items():
        ratios = {c: [r[c][0] / r["S"] for r in runs] for c in ("1.5x", "2x")}
        per_cpu = {
            c: [r[c][0] / r[c][2] / (r["S"] / r["S_busy"]) for r in runs] for c in ("1.5x", "2x")
        }
        print(
            f"median {name:8s} ({len(runs)} runs) S {statistics.median(r['S'] for r in runs):.0f}/s"
            f" 1.5x {statistics.median(ratios['1.5x']):.0%} (min {min(ratios['1.5x']):.0%})"
            f" 2x {statistics.median(ratios['2x']):.0%} (min {min(ratios['2x']):.0%})"
            f"; per CPU 1.5x {statistics.median(per_cpu['1.5x']):.0%}"
            f" 2x {statistics.median(per_cpu['2x']):.0%};"
            f" after {statistics.median(r['after'][0] for r in runs):.0f}/s"
            f" 503 {statistics.median(r['after'][1] for r in runs):.0f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--order", choices=("abba", "alternate", "forward"), default="abba")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--saturation-seconds", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--pause", type=float, default=1.5)
    parser.add_argument("--trajectory", action="store_true")
    asyncio.run(main(parser.parse_args()))
