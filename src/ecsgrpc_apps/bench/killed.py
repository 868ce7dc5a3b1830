"""Scenario 2, task killed: SIGKILL one of 3 agents under load.

Every contender runs at once (300 calls/s in total, half unary, half
20-event streams of ~0.1 s) against the same 3 agents, listed by address or
by one DNS name; discovery is not updated (a crash that discovery has not
seen yet). The agent killed is the one the seed-style client connected to
(the first that answered; to the balanced clients all three are alike).

Per contender: failed calls (streams that failed after some output
separately: no client can save those without replaying them), duplicated
stream output (repeated sequence numbers: a replay), and the time from the
kill until no call goes to the dead agent: the start of the last call that
failed or was retried (ecsgrpc's retries counter, the seed's replays). When
calls still fail in the last second of the window that is "never".
"""

from __future__ import annotations

import asyncio
import time

from ecsgrpc_apps.bench.contenders import SeedClient
from ecsgrpc_apps.bench.faults import error_kinds, failure_metrics, note_overload, running, timeline
from ecsgrpc_apps.bench.fleet import AgentFleet
from ecsgrpc_apps.bench.load import Call
from ecsgrpc_apps.bench.results import Metric, Row, ScenarioResult, check
from ecsgrpc_apps.bench.settings import Context

__all__ = ["reroute_seconds", "run"]

NAME = "task_killed"
EVENT_DELAY = 0.005
COLUMNS = (
    "calls",
    "failed",
    "failed_stream_after_output",
    "duplicated_streams",
    "seconds_to_reroute",
    "p99_ms",
)


def reroute_seconds(calls: list[Call], marks: list[float], t_kill: float, end: float) -> Metric:
    """Seconds from ``t_kill`` to the last call affected by the dead agent, or "never"."""
    affected = [c.start for c in calls if not c.ok and c.start >= t_kill - 1.0]
    affected += [m for m in marks if m >= t_kill]
    if not affected:
        return 0.0
    last = max(affected)
    if last >= end - 1.0:
        return "never"
    return max(0.0, last - t_kill)


async def run(ctx: Context) -> ScenarioResult:
    s = ctx.settings
    result = ScenarioResult(
        NAME,
        f"Task killed: SIGKILL 1 of 3 agents at t={s.kill_at:g}s of {s.kill_seconds:g}s, "
        f"{s.rate:g} calls/s in total",
        COLUMNS,
        params={
            "agents": 3,
            "rate_total": s.rate,
            "contenders_at_once": len(ctx.contenders),
            "seconds": s.kill_seconds,
            "kill_at": s.kill_at,
            "stream_event_delay": EVENT_DELAY,
        },
    )
    fleet = AgentFleet(3, args=[("--event-delay", str(EVENT_DELAY))] * 3)
    try:
        spec = await fleet.start()
        async with running(ctx, spec, scenario=NAME) as loads:
            victim_address = spec.addresses[0]
            for client in loads.clients:
                if isinstance(client, SeedClient) and client.seed.address:
                    victim_address = client.seed.address
            victim = next(a for a in fleet.agents if a.address == victim_address)
            ctx.progress(f"{NAME}: load running, kill at {s.kill_at:g}s")
            await asyncio.sleep(s.kill_at)
            t_kill = time.monotonic()
            victim.kill()
            ctx.progress(f"{NAME}: killed {victim.address}; load continues")
            await asyncio.sleep(s.kill_seconds - s.kill_at)
            end = time.monotonic()
            marks = {name: load.retry_marks for name, load in loads.loads.items()}
            calls = await loads.stop()
            note_overload(result, loads, calls)
    finally:
        await fleet.aclose()
    result.params["killed"] = victim.instance_id
    for name, its_calls in calls.items():
        metrics = failure_metrics(its_calls)
        metrics["seconds_to_reroute"] = reroute_seconds(its_calls, marks[name], t_kill, end)
        metrics["errors"] = error_kinds(its_calls)
        result.rows.append(Row(name, metrics))
        result.series[name] = timeline(its_calls, t_kill)
        if name.startswith("ecsgrpc_"):
            result.targets.append(
                check(NAME, name, "failed", metrics["failed"], "==", 0, note=_failed_note(metrics))
            )
            result.targets.append(
                check(NAME, name, "duplicated_streams", metrics["duplicated_streams"], "==", 0)
            )
    result.series["_events"] = [{"t": 0.0, "label": f"SIGKILL {victim.instance_id}"}]
    for name, reason in ctx.skipped.items():
        result.rows.append(Row(name, skipped=reason))
    return result


def _failed_note(metrics: dict[str, Metric]) -> str:
    after = metrics.get("failed_stream_after_output")
    return f"{after} of them streams cut after some output (never replayed, by design)"
