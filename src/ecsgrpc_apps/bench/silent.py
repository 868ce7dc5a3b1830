"""Scenario 8, silent failure: 1 of 3 agents freezes or is black-holed under load.

Three cases, on the same 3 agents (127.0.12.41-43), every contender at once
(plus ``native_keepalive_round_robin``: grpc's round_robin with a keepalive
ping every 10 s and 5 s to answer), mostly unary calls with a 2 s deadline
and one 20-event stream in ten:

* ``freeze``: SIGSTOP of the agent the pinned clients use, SIGCONT later;
* ``black_hole``: every packet to and from that agent's address and port is
  dropped (``iptables``; skipped with the reason when it cannot be used);
* ``unreachable``: the last-listed agent is black-holed before any client
  connects (it is listed, never reachable).

Per contender: failed calls, failed calls started later than 2 s into the
fault (each is a call sent to the silent agent after the goal's 2 s), the
start of the last call that went to the agent during the fault (served by it
or failed), the first call it served after the fault ended, and failures
among calls started after the fault ended (the burst on recovery).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator

from ecsgrpc_apps.bench.contenders import NATIVE_KEEPALIVE, Fleet
from ecsgrpc_apps.bench.faults import (
    error_kinds,
    failure_metrics,
    note_overload,
    running,
    timeline,
)
from ecsgrpc_apps.bench.fleet import AgentFleet
from ecsgrpc_apps.bench.load import Call
from ecsgrpc_apps.bench.results import Metric, Row, ScenarioResult, check
from ecsgrpc_apps.bench.settings import Context
from ecsgrpc_apps.local.blackhole import BlackHole, iptables_missing, remove_leftover_rules
from ecsgrpc_apps.local.process import AgentProcess

__all__ = ["run"]

NAME = "silent_failure"
EVENT_DELAY = 0.005
UNARY_DEADLINE = 2.0
STREAM_DEADLINE = 5.0
GOAL_SECONDS = 2.0  # no new call to the silent agent later than this after the fault
BACK_SECONDS = 5.0  # back in rotation within this after the fault ends
KINDS = ("unary",) * 9 + ("stream",)
COLUMNS = (
    "calls",
    "failed",
    "failed_late",
    "last_to_agent_s",
    "back_after_s",
    "failed_after_recovery",
    "p99_ms",
)
NETWORK = "127.0.12"  # the only addresses a black hole may cover


@contextlib.asynccontextmanager
async def _fault(kind: str, agent: AgentProcess) -> AsyncIterator[None]:
    """Freeze or black-hole ``agent`` inside the block (iptables runs off the loop)."""
    if kind == "freeze":
        agent.signal(signal.SIGSTOP)
        try:
            yield
        finally:
            agent.signal(signal.SIGCONT)
    else:
        hole = BlackHole(agent.host, agent.port)
        try:
            await asyncio.to_thread(hole.open)
            yield
        finally:
            await asyncio.to_thread(hole.close)


def _metrics(calls: list[Call], victim: str, t_fault: float, t_back: float) -> dict[str, Metric]:
    metrics = failure_metrics(calls)
    during = [c for c in calls if t_fault <= c.start < t_back]
    to_agent = [c.start for c in during if c.served_by == victim or not c.ok]
    metrics["failed_late"] = sum(1 for c in during if not c.ok and c.start >= t_fault + 2.0)
    metrics["last_to_agent_s"] = max(to_agent) - t_fault if to_agent else 0.0
    long_enough = t_back - t_fault > GOAL_SECONDS + 0.5  # else "never" cannot be told
    if to_agent and long_enough and max(to_agent) >= t_back - 0.5:
        metrics["last_to_agent_s"] = "never"
    after = [c for c in calls if c.start >= t_back]
    served = [c.start - t_back for c in after if c.served_by == victim and c.ok]
    metrics["back_after_s"] = min(served) if served else "never"
    metrics["failed_after_recovery"] = sum(1 for c in after if not c.ok)
    metrics["errors"] = error_kinds(calls)
    return metrics


async def _one_case(
    ctx: Context, case: str, fleet: AgentFleet, spec: Fleet, result: ScenarioResult
) -> None:
    s = ctx.settings
    fault_at, fault_for, tail = s.silent_at, s.silent_seconds, s.silent_tail
    contenders = [*ctx.contenders, NATIVE_KEEPALIVE]
    hole: BlackHole | None = None
    try:
        if case == "unreachable":
            victim = fleet.agents[-1]
            hole = BlackHole(victim.host, victim.port)
            await asyncio.to_thread(hole.open)
            spec = Fleet(spec.addresses, dns=spec.dns, size=2)
        else:
            victim = fleet.agents[0]  # the one pinned clients (raw, seed) use
        async with running(
            ctx,
            spec,
            kinds=KINDS,
            scenario=f"{NAME}/{case}",
            contenders=contenders,
            unary_timeout=UNARY_DEADLINE,
            timeout=STREAM_DEADLINE,
        ) as loads:
            await asyncio.sleep(fault_at)
            t_fault = time.monotonic()
            if case == "unreachable":
                await asyncio.sleep(fault_for + tail)
                t_back = time.monotonic()
            else:
                ctx.progress(f"{NAME}: {case} of {victim.address} for {fault_for:g}s")
                async with _fault(case, victim):
                    await asyncio.sleep(fault_for)
                t_back = time.monotonic()
                await asyncio.sleep(tail)
            calls = await loads.stop()
            note_overload(result, loads, calls, case=case)
    finally:
        if hole is not None:
            await asyncio.to_thread(hole.close)
    for name, its_calls in calls.items():
        if case == "unreachable":
            metrics = failure_metrics(its_calls)
            metrics["errors"] = error_kinds(its_calls)
            metrics["last_to_agent_s"] = 0.0 if metrics["failed"] == 0 else "never"
            # The agent never answered and never recovered: these do not apply.
            for column in ("failed_late", "back_after_s", "failed_after_recovery"):
                metrics[column] = "n/a"
        else:
            metrics = _metrics(its_calls, victim.instance_id, t_fault, t_back)
            result.series[f"{case}/{name}"] = timeline(its_calls, t_fault)
        result.rows.append(Row(name, metrics, case=case))
        if not name.startswith("ecsgrpc_"):
            continue
        if case == "unreachable":
            result.targets.append(
                check(NAME, name, "failed", metrics["failed"], "==", 0, case=case)
            )
            continue
        result.targets.append(
            check(
                NAME,
                name,
                "last_to_agent_s",
                metrics["last_to_agent_s"],
                "<=",
                GOAL_SECONDS,
                case=case,
            )
        )
        result.targets.append(
            check(NAME, name, "failed_late", metrics["failed_late"], "==", 0, case=case)
        )
        result.targets.append(
            check(
                NAME, name, "back_after_s", metrics["back_after_s"], "<=", BACK_SECONDS, case=case
            )
        )
        result.targets.append(
            check(
                NAME,
                name,
                "failed_after_recovery",
                metrics["failed_after_recovery"],
                "==",
                0,
                case=case,
            )
        )
    result.params[f"{case}_agent"] = victim.instance_id


async def run(ctx: Context) -> ScenarioResult:
    s = ctx.settings
    result = ScenarioResult(
        NAME,
        f"Silent failure: 1 of 3 agents frozen or black-holed at t={s.silent_at:g}s for "
        f"{s.silent_seconds:g}s, {s.rate:g} calls/s in total (unary deadline "
        f"{UNARY_DEADLINE:g}s)",
        COLUMNS,
        params={
            "agents": 3,
            "rate_total": s.rate,
            "fault_at": s.silent_at,
            "fault_seconds": s.silent_seconds,
            "unary_deadline": UNARY_DEADLINE,
            "stream_deadline": STREAM_DEADLINE,
            "streams_share": KINDS.count("stream") / len(KINDS),
        },
    )
    missing = await asyncio.to_thread(iptables_missing)
    cases = ["freeze"] if missing else ["freeze", "black_hole", "unreachable"]
    if missing:
        result.notes.append(f"black_hole and unreachable skipped: {missing}")
    else:
        await asyncio.to_thread(remove_leftover_rules)
    # One fleet for every case: the victim serves normally again once its fault
    # ends; each case opens every contender afresh (new connections).
    fleet = AgentFleet(3, network=NETWORK, args=[("--event-delay", str(EVENT_DELAY))] * 3)
    try:
        spec = await fleet.start()
        for case in cases:
            await _one_case(ctx, case, fleet, spec, result)
    finally:
        await fleet.aclose()
    result.series["_events"] = [
        {"t": 0.0, "label": "fault starts"},
        {"t": s.silent_seconds, "label": "fault ends"},
    ]
    for name, reason in ctx.skipped.items():
        result.rows.append(Row(name, skipped=reason))
    return result
