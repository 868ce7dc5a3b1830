"""Scenario 6, discovery outage: the Cloud Map API (the emulator) is down under load.

3 tasks in Cloud Map; every contender under load; the emulator stops (same
port, state kept) for the outage, then comes back. ecsgrpc must keep its
last-known-good endpoints and fail no call. The other contenders do not ask
Cloud Map's API (fixed list, DNS), so the outage cannot touch them: they are
run anyway, in the same load, as a control.
"""

from __future__ import annotations

import asyncio

from ecsgrpc_apps.bench.faults import error_kinds, failure_metrics, note_overload, running
from ecsgrpc_apps.bench.fleet import TaskFleet
from ecsgrpc_apps.bench.results import Row, ScenarioResult, check
from ecsgrpc_apps.bench.settings import Context
from ecsgrpc_apps.local.task import TaskDefinition

__all__ = ["run"]

NAME = "discovery_outage"
DEFINITION = TaskDefinition(drain_seconds=1.0, grace_seconds=3.0, event_delay_seconds=0.005)
COLUMNS = ("calls", "failed", "duplicated_streams", "p99_ms")


async def run(ctx: Context) -> ScenarioResult:
    s = ctx.settings
    emulator = await asyncio.to_thread(ctx.emulator)
    tasks = TaskFleet(
        emulator, ctx.service_name("outage"), definition=DEFINITION, poll=s.cloudmap_poll
    )
    result = ScenarioResult(
        NAME,
        f"Discovery outage: Cloud Map API down {s.outage_seconds:g}s under load",
        COLUMNS,
        params={
            "tasks": 3,
            "rate_total": s.rate,
            "outage_seconds": s.outage_seconds,
            "cloudmap_poll": s.cloudmap_poll,
        },
    )
    try:
        spec = await tasks.start(3)
        async with running(ctx, spec, scenario=NAME) as loads:
            await asyncio.sleep(s.settle_seconds / 2)
            ctx.progress(f"{NAME}: Cloud Map down for {s.outage_seconds:g}s")
            await asyncio.to_thread(emulator.stop)
            try:
                await asyncio.sleep(s.outage_seconds)
            finally:
                await asyncio.to_thread(emulator.start)
            ctx.progress(f"{NAME}: Cloud Map back; load continues")
            await asyncio.sleep(s.settle_seconds)
            calls = await loads.stop()
            note_overload(result, loads, calls)
    finally:
        await asyncio.to_thread(emulator.start)
        await tasks.aclose()
    for name, its_calls in calls.items():
        metrics = failure_metrics(its_calls)
        metrics["errors"] = error_kinds(its_calls)
        metrics["uses_cloudmap"] = int(name.startswith("ecsgrpc_"))
        result.rows.append(Row(name, metrics))
        if name.startswith("ecsgrpc_"):
            result.targets.append(check(NAME, name, "failed", metrics["failed"], "==", 0))
            result.targets.append(
                check(NAME, name, "duplicated_streams", metrics["duplicated_streams"], "==", 0)
            )
    for name, reason in ctx.skipped.items():
        result.rows.append(Row(name, skipped=reason))
    return result
