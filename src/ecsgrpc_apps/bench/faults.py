"""What the fault scenarios share: every contender under load at once, then a summary.

All contenders run *at the same time* against the same servers, each at an
equal share of the total rate, so the fault (a kill, a deploy, an outage)
hits every one of them at the same instant and under the same machine load.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from ecsgrpc_apps.bench.contenders import Client, Contender, Fleet
from ecsgrpc_apps.bench.load import Call, PacedLoad, percentile
from ecsgrpc_apps.bench.results import Metric, ScenarioResult
from ecsgrpc_apps.bench.settings import Context

__all__ = ["Loads", "failure_metrics", "note_overload", "running", "timeline"]

BIN_SECONDS = 0.5
# A call started this late: this process did not get the CPU to keep the schedule.
LATE_LIMIT_SECONDS = 0.5
# DescribeAgent takes about 1 ms on an idle machine; a median this slow means queues.
SLOW_UNARY_MS = 250.0
# A stream of 20 events 5 ms apart takes about 0.1 s on an idle machine (2 s on
# slow_task's slow agent: that scenario judges its fast agents' streams only).
SLOW_STREAM_MS = 1000.0


@dataclass
class Loads:
    """The clients and their loads of one scenario run."""

    clients: list[Client]
    loads: dict[str, PacedLoad]

    async def stop(self) -> dict[str, list[Call]]:
        """Stop every load at the same moment, then wait for their calls in flight."""
        for load in self.loads.values():
            load.halt()
        out = {}
        for name, load in self.loads.items():
            out[name] = await load.stop()
        return out


@contextlib.asynccontextmanager
async def running(
    ctx: Context,
    fleet: Fleet,
    *,
    kinds: Sequence[str] = ("unary", "stream"),
    scenario: str,
    contenders: Sequence[Contender] | None = None,
    unary_timeout: float | None = None,
    timeout: float = 15.0,
) -> AsyncIterator[Loads]:
    """Open every contender on ``fleet`` and start its load; close them all at the end."""
    clients: list[Client] = []
    try:
        for contender in ctx.contenders if contenders is None else contenders:
            ctx.progress(f"{scenario}: connecting {contender.name}")
            clients.append(await contender.open(fleet))
        rate = ctx.settings.rate / max(1, len(clients))
        loads = {
            c.name: PacedLoad(
                c, rate=rate, kinds=kinds, timeout=timeout, unary_timeout=unary_timeout
            )
            for c in clients
        }
        for load in loads.values():
            load.start()
        yield Loads(clients, loads)
    finally:
        for client in clients:
            await client.aclose()


def note_overload(
    result: ScenarioResult,
    loads: Loads,
    calls: Mapping[str, Sequence[Call]],
    case: str = "",
    *,
    calls_of: str = "",
) -> bool:
    """Record whether the machine kept up with the load; add a note and return True if not.

    The loads are open loop at a fixed total rate. When this process or the
    agents get less CPU than that rate needs (other jobs on the machine), calls
    queue, latencies grow for as long as the load lasts and streams reach their
    deadline, for every contender alike: such a run measures the machine, not
    the clients. Signs: calls started late (``load_start_late_max_s``), or a
    slow median unary call or stream (``unary_p50_ms``, ``stream_p50_ms``:
    every contender's successful calls in ``calls`` pooled). With ``case`` (a
    scenario of several runs), the params and note name it. ``calls_of`` says
    in the note which calls ``calls`` holds when not all (" to a fast agent").
    """
    late = max((load.max_late for load in loads.loads.values()), default=0.0)
    prefix = f"{case}_" if case else ""
    result.params[f"{prefix}load_start_late_max_s"] = round(late, 3)
    signs = []
    if late > LATE_LIMIT_SECONDS:
        signs.append(f"calls started up to {late:.1f} s after their scheduled time")
    for kind, limit, idle in (
        ("unary", SLOW_UNARY_MS, "1 ms"),
        ("stream", SLOW_STREAM_MS, "0.1 s"),
    ):
        latencies = [c.latency for its in calls.values() for c in its if c.ok and c.kind == kind]
        p50 = percentile(latencies, 0.5) * 1000 if latencies else None
        result.params[f"{prefix}{kind}_p50_ms"] = None if p50 is None else round(p50, 2)
        if p50 is not None and p50 > limit:
            signs.append(
                f"the median {kind} call{calls_of} took {p50:.0f} ms (about {idle} when idle)"
            )
    if not signs:
        return False
    where = f" in case {case}" if case else ""
    result.notes.append(
        f"**The machine did not keep up with the load**{where} ({'; '.join(signs)}): calls "
        "queued for every contender alike, so failures and latencies in this run "
        "measure the machine (other jobs on it), not the clients. Rerun when it is quiet."
    )
    return True


def failure_metrics(calls: Sequence[Call]) -> dict[str, Metric]:
    """Calls, failures (by kind), duplicated output, latency."""
    failed = [c for c in calls if not c.ok]
    streams = [c for c in calls if c.kind == "stream"]
    dup_calls = [c for c in streams if c.duplicated]
    ok_latency = [c.latency for c in calls if c.ok]
    return {
        "calls": len(calls),
        "failed": len(failed),
        "failed_unary": sum(1 for c in failed if c.kind == "unary"),
        "failed_stream": sum(1 for c in failed if c.kind == "stream"),
        "failed_stream_after_output": sum(1 for c in failed if c.kind == "stream" and c.sequences),
        "duplicated_streams": len(dup_calls),
        "duplicated_events": sum(c.duplicated for c in dup_calls),
        "p50_ms": percentile(ok_latency, 0.5) * 1000,
        "p99_ms": percentile(ok_latency, 0.99) * 1000,
        "max_ms": max(ok_latency, default=float("nan")) * 1000,
    }


def error_kinds(calls: Sequence[Call]) -> str:
    """``"UNAVAILABLE x12, DEADLINE_EXCEEDED x1"`` (empty when none failed)."""
    counts = Counter(c.error for c in calls if c.error)
    return ", ".join(f"{code} x{n}" for code, n in counts.most_common())


def timeline(calls: Sequence[Call], t0: float) -> dict[str, object]:
    """Calls started per 0.5 s bin, by serving agent (failures as ``"failed"``)."""
    if not calls:
        return {"bin_seconds": BIN_SECONDS, "start": 0.0, "by_agent": {}}
    first = min(c.start for c in calls)
    bins: dict[str, Counter[int]] = {}
    for c in calls:
        key = c.served_by if c.ok else "failed"
        bins.setdefault(key or "unknown", Counter())[int((c.start - first) / BIN_SECONDS)] += 1
    size = 1 + int((max(c.start for c in calls) - first) / BIN_SECONDS)
    return {
        "bin_seconds": BIN_SECONDS,
        "start": round(first - t0, 3),
        "by_agent": {k: [v.get(i, 0) for i in range(size)] for k, v in sorted(bins.items())},
    }
