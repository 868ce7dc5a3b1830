"""Scenario 4, scale out: a 4th task joins (Cloud Map and DNS) while 3 serve under load.

The new task is registered in Cloud Map and, once healthy, gets an A record
(Cloud Map's DNS, mirrored into dnsmasq). Per contender: seconds from the
moment it is discoverable (healthy) until the first call it serves, or
"never" within the window; and its share of the calls in the window's last
two seconds (a fair share is 0.25). Native ``dns:///`` is expected to be
"never": grpc re-resolves only after a connection fails, not on the TTL.
"""

from __future__ import annotations

import asyncio
import time

from ecsgrpc_apps.bench.faults import error_kinds, failure_metrics, note_overload, running, timeline
from ecsgrpc_apps.bench.fleet import TaskFleet
from ecsgrpc_apps.bench.load import Call
from ecsgrpc_apps.bench.results import Metric, Row, ScenarioResult, check
from ecsgrpc_apps.bench.settings import Context
from ecsgrpc_apps.local.task import TaskDefinition, TaskEvent, TaskEventKind

__all__ = ["run"]

NAME = "scale_out"
DEFINITION = TaskDefinition(drain_seconds=0.5, grace_seconds=3.0, event_delay_seconds=0.005)
COLUMNS = ("seconds_to_first_call", "share_at_end", "calls", "failed", "p99_ms", "errors")


def first_call(calls: list[Call], instance: str, since: float) -> Metric:
    """Seconds from ``since`` to the first call ``instance`` served, or "never"."""
    starts = [c.start for c in calls if c.ok and c.served_by == instance]
    return max(0.0, min(starts) - since) if starts else "never"


def share(calls: list[Call], instance: str, since: float) -> float:
    window = [c for c in calls if c.ok and c.start >= since]
    return sum(1 for c in window if c.served_by == instance) / len(window) if window else 0.0


async def run(ctx: Context) -> ScenarioResult:
    s = ctx.settings
    emulator = await asyncio.to_thread(ctx.emulator)
    tasks = TaskFleet(
        emulator, ctx.service_name("scaleout"), definition=DEFINITION, poll=s.cloudmap_poll
    )
    result = ScenarioResult(
        NAME,
        f"Scale out: a 4th task registered under load; window {s.scaleout_window:g}s",
        COLUMNS,
        params={
            "rate_total": s.rate,
            "window_seconds": s.scaleout_window,
            "cloudmap_poll": s.cloudmap_poll,
            "dns_ttl": 10,
        },
    )
    healthy_at: dict[str, float] = {}

    def note(event: TaskEvent) -> None:
        if event.kind is TaskEventKind.HEALTHY:
            healthy_at.setdefault(event.task.task_id, time.monotonic())

    try:
        spec = await tasks.start(3)
        old = {t.task_id for t in tasks.runner.tasks}
        async with running(ctx, spec, scenario=NAME) as loads:
            await asyncio.sleep(s.settle_seconds / 2)
            tasks.runner.add_listener(note)
            ctx.progress(f"{NAME}: starting a 4th task")
            await tasks.runner.scale(4)
            new = next(t for t in tasks.runner.tasks if t.task_id not in old)
            t0 = healthy_at.get(new.task_id, time.monotonic())
            ctx.progress(f"{NAME}: 4th task healthy; watching for {s.scaleout_window:g}s")
            await asyncio.sleep(max(0.0, t0 + s.scaleout_window - time.monotonic()))
            end = time.monotonic()
            calls = await loads.stop()
            note_overload(result, loads, calls)
    finally:
        await tasks.aclose()
    for name, all_calls in calls.items():
        its_calls = [c for c in all_calls if c.start <= end]
        metrics: dict[str, Metric] = {
            "seconds_to_first_call": first_call(its_calls, new.task_id, t0),
            "share_at_end": share(its_calls, new.task_id, end - 2.0),
        }
        metrics.update(failure_metrics(its_calls))
        metrics["errors"] = error_kinds(its_calls)
        result.rows.append(Row(name, metrics))
        result.series[name] = timeline(its_calls, t0)
        if name.startswith("ecsgrpc_"):
            result.targets.append(
                check(
                    NAME,
                    name,
                    "seconds_to_first_call",
                    metrics["seconds_to_first_call"],
                    "<=",
                    s.cloudmap_poll + 1.0,
                    note="poll interval + 1 s",
                )
            )
    result.series["_events"] = [{"t": 0.0, "label": f"healthy {new.task_id[:8]}"}]
    for name, reason in ctx.skipped.items():
        result.rows.append(Row(name, skipped=reason))
    return result
