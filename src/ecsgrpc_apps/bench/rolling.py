"""Scenario 3, rolling deploy: the local ECS-like service replaces all 3 tasks under load.

The :class:`~ecsgrpc_apps.local.tasks.TaskRunner` does what ECS does (start a new
task, wait until it is healthy in Cloud Map, deregister an old one, SIGTERM,
drain, exit), three times. ecsgrpc discovers through Cloud Map; native
``round_robin`` has the initial ``ipv4:`` list and native ``dns:///`` and the
seed-style client the DNS name (Cloud Map's DNS, mirrored into dnsmasq), which
is what each would have. Load continues for a while after the deploy, so a
client left with only stopped tasks shows it in its failures.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from ecsgrpc_apps.bench.faults import error_kinds, failure_metrics, note_overload, running, timeline
from ecsgrpc_apps.bench.fleet import TaskFleet
from ecsgrpc_apps.bench.results import Row, ScenarioResult, check
from ecsgrpc_apps.bench.settings import Context
from ecsgrpc_apps.local.task import TaskDefinition, TaskEvent, TaskEventKind

__all__ = ["DEFINITION", "definition", "run"]

NAME = "rolling_deploy"
DEFINITION = TaskDefinition(
    drain_seconds=1.0, grace_seconds=5.0, stop_timeout=10.0, event_delay_seconds=0.005
)


def definition(scale: float) -> TaskDefinition:
    """The tasks' definition; the drain shrinks only for tiny test runs (scale < 1)."""
    return dataclasses.replace(DEFINITION, drain_seconds=max(0.2, min(1.0, scale)))


COLUMNS = ("calls", "failed", "failed_stream_after_output", "duplicated_streams", "p99_ms")


async def run(ctx: Context) -> ScenarioResult:
    s = ctx.settings
    emulator = await asyncio.to_thread(ctx.emulator)
    tasks = TaskFleet(
        emulator,
        ctx.service_name("rolling"),
        definition=definition(s.scale),
        poll=s.cloudmap_poll,
    )
    result = ScenarioResult(
        NAME,
        "Rolling deploy: 3 tasks replaced one at a time (ECS min 100 % / max 200 %) under load",
        COLUMNS,
        params={
            "tasks": 3,
            "rate_total": s.rate,
            "cloudmap_poll": s.cloudmap_poll,
            "drain_seconds": definition(s.scale).drain_seconds,
            "after_seconds": s.settle_seconds,
        },
    )
    events: list[dict[str, object]] = []
    try:
        spec = await tasks.start(3)
        async with running(ctx, spec, scenario=NAME) as loads:
            await asyncio.sleep(s.settle_seconds / 2)
            t0 = time.monotonic()

            def note(event: TaskEvent) -> None:
                if event.kind in (TaskEventKind.HEALTHY, TaskEventKind.DRAINING):
                    label = f"{event.kind.value} {event.task.short_id}"
                    events.append({"t": round(time.monotonic() - t0, 3), "label": label})

            remove = tasks.runner.add_listener(note)
            ctx.progress(f"{NAME}: deploying")
            await tasks.runner.rolling_deploy()
            deploy_seconds = time.monotonic() - t0
            remove()
            ctx.progress(f"{NAME}: deployed in {deploy_seconds:.1f}s; load continues")
            await asyncio.sleep(s.settle_seconds)
            calls = await loads.stop()
            note_overload(result, loads, calls)
    finally:
        await tasks.aclose()
    result.params["deploy_seconds"] = round(deploy_seconds, 2)
    result.series["_events"] = events
    for name, its_calls in calls.items():
        metrics = failure_metrics(its_calls)
        metrics["errors"] = error_kinds(its_calls)
        result.rows.append(Row(name, metrics))
        result.series[name] = timeline(its_calls, t0)
        if name.startswith("ecsgrpc_"):
            result.targets.append(check(NAME, name, "failed", metrics["failed"], "==", 0))
            result.targets.append(
                check(NAME, name, "duplicated_streams", metrics["duplicated_streams"], "==", 0)
            )
    for name, reason in ctx.skipped.items():
        result.rows.append(Row(name, skipped=reason))
    return result
