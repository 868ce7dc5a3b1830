"""Scenario 5, slow task: one of 3 agents is 20x slower (``--event-delay``).

Streams only (20 events; 5 ms before each event on two agents, 100 ms on
the slow one), every contender at once at an equal share of the rate. Per
contender: the share of calls the slow agent served, and p50/p99 of all
calls. The slow agent is the first listed, the one a pinned client (raw,
seed-style) connects to: for those the outcome is a lottery (1 in 3: every
call slow; 2 in 3: none), shown here at its worst.

Whether the machine kept up is judged on the fast agents' streams only: the
slow agent's take about 2 s by design, and with the pinned clients sending it
every call they are about half of all streams, so their median says nothing
about the machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from ecsgrpc_apps.bench.faults import Loads, failure_metrics, note_overload, running
from ecsgrpc_apps.bench.fleet import AgentFleet
from ecsgrpc_apps.bench.load import Call
from ecsgrpc_apps.bench.results import Metric, Row, ScenarioResult, check
from ecsgrpc_apps.bench.settings import Context

__all__ = ["note_slow_task_overload", "run"]

NAME = "slow_task"
FAST_DELAY = 0.005
SLOW_DELAY = 0.1
COLUMNS = ("slow_share", "p50_ms", "p99_ms", "calls", "failed")


def note_slow_task_overload(
    result: ScenarioResult,
    loads: Loads,
    calls: Mapping[str, Sequence[Call]],
    slow_id: str,
) -> bool:
    """:func:`note_overload` on the calls the fast agents served (see the module docstring)."""
    fast = {name: [c for c in its if c.served_by != slow_id] for name, its in calls.items()}
    return note_overload(result, loads, fast, calls_of=" to a fast agent")


async def run(ctx: Context) -> ScenarioResult:
    s = ctx.settings
    result = ScenarioResult(
        NAME,
        f"Slow task: 1 of 3 agents 20x slower, streams only, {s.slow_seconds:g}s",
        COLUMNS,
        params={
            "rate_total": s.rate,
            "seconds": s.slow_seconds,
            "fast_event_delay": FAST_DELAY,
            "slow_event_delay": SLOW_DELAY,
        },
    )
    args = [("--event-delay", str(SLOW_DELAY))] + [("--event-delay", str(FAST_DELAY))] * 2
    fleet = AgentFleet(3, args=args)
    try:
        spec = await fleet.start()
        slow_id = fleet.agents[0].instance_id
        async with running(ctx, spec, kinds=("stream",), scenario=NAME) as loads:
            ctx.progress(f"{NAME}: load for {s.slow_seconds:g}s")
            await asyncio.sleep(s.slow_seconds)
            calls = await loads.stop()
            note_slow_task_overload(result, loads, calls, slow_id)
    finally:
        await fleet.aclose()
    result.params["slow_agent"] = slow_id
    p99: dict[str, Metric] = {}
    for name, its_calls in calls.items():
        ok = [c for c in its_calls if c.ok]
        metrics: dict[str, Metric] = {
            "slow_share": sum(1 for c in ok if c.served_by == slow_id) / len(ok) if ok else None
        }
        metrics.update(failure_metrics(its_calls))
        p99[name] = metrics["p99_ms"]
        result.rows.append(Row(name, metrics))
    lr = next((r for r in result.rows if r.contender == "ecsgrpc_least_request"), None)
    if lr is not None:
        result.targets.append(
            check(NAME, lr.contender, "slow_share", lr.metrics["slow_share"], "<", 0.15)
        )
        rr_p99 = p99.get("ecsgrpc_round_robin")
        if isinstance(rr_p99, float):
            result.targets.append(
                check(
                    NAME,
                    lr.contender,
                    "p99_ms",
                    lr.metrics["p99_ms"],
                    "<",
                    rr_p99,
                    note="below ecsgrpc round_robin's p99",
                )
            )
    for name, reason in ctx.skipped.items():
        result.rows.append(Row(name, skipped=reason))
    return result
