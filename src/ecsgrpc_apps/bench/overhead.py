"""Scenario 1, overhead: throughput, latency and client CPU of each contender.

Three agents; unary and server-streaming (20 events a call) calls, at
concurrency 1 and 32 (closed loop: each worker calls again as soon as its
call ends). Contenders share one client process and the same agent
processes; they run interleaved, round after round (the order rotates each
round), and the median round by throughput is kept, so slow phases of a
noisy machine hit every contender alike. Throughput and p50 are reported as
ratios to native ``round_robin`` measured in the same rounds.
"""

from __future__ import annotations

from ecsgrpc_apps.bench.closed_loop import OverheadResult, median_round, ratio, run_round
from ecsgrpc_apps.bench.contenders import Client
from ecsgrpc_apps.bench.fleet import AgentFleet
from ecsgrpc_apps.bench.load import STREAM_WORDS
from ecsgrpc_apps.bench.results import Row, ScenarioResult, check
from ecsgrpc_apps.bench.settings import Context

__all__ = ["BASELINE", "run"]

NAME = "overhead"
BASELINE = "native_round_robin"
KINDS = ("unary", "stream")
CONCURRENCIES = (1, 32)
COLUMNS = (
    "calls_per_second",
    "x_native_throughput",
    "p50_ms",
    "x_native_p50",
    "p99_ms",
    "cpu_us_per_call",
    "x_native_cpu_per_call",
    "errors",
)


async def run(ctx: Context) -> ScenarioResult:
    s = ctx.settings
    result = ScenarioResult(
        NAME,
        "Overhead: 3 agents, closed loop, median of interleaved rounds",
        COLUMNS,
        params={
            "agents": 3,
            "seconds_per_round": s.overhead_seconds,
            "rounds": s.overhead_rounds,
            "stream_events": STREAM_WORDS + 2,
            "baseline": BASELINE,
        },
    )
    fleet = AgentFleet(3)
    clients: list[Client] = []
    try:
        spec = await fleet.start()
        for contender in ctx.contenders:
            ctx.progress(f"overhead: connecting {contender.name}")
            clients.append(await contender.open(spec))
        samples: dict[tuple[str, str, int], list[OverheadResult]] = {}
        for kind in KINDS:
            for concurrency in CONCURRENCIES:
                for client in clients:  # warm-up
                    await run_round(client, kind, concurrency, seconds=min(0.3, s.overhead_seconds))
                for round_no in range(s.overhead_rounds):
                    shift = round_no % len(clients)
                    for client in clients[shift:] + clients[:shift]:
                        ctx.progress(
                            f"overhead: {kind} c={concurrency} round {round_no + 1}/"
                            f"{s.overhead_rounds} {client.name}"
                        )
                        r = await run_round(client, kind, concurrency, seconds=s.overhead_seconds)
                        samples.setdefault((client.name, kind, concurrency), []).append(r)
    finally:
        for client in clients:
            await client.aclose()
        await fleet.aclose()
    medians = [median_round(runs) for runs in samples.values()]
    _fill(result, medians, ctx)
    return result


def _fill(result: ScenarioResult, medians: list[OverheadResult], ctx: Context) -> None:
    base = {(r.kind, r.concurrency): r for r in medians if r.contender == BASELINE}
    for r in medians:
        b = base.get((r.kind, r.concurrency))
        case = f"{r.kind} c={r.concurrency}"
        metrics = {
            "calls_per_second": r.calls_per_second,
            "x_native_throughput": ratio(r.calls_per_second, b.calls_per_second if b else 0),
            "p50_ms": r.p50_ms,
            "x_native_p50": ratio(r.p50_ms, b.p50_ms if b else 0),
            "p99_ms": r.p99_ms,
            "cpu_us_per_call": r.cpu_us_per_call,
            "x_native_cpu_per_call": ratio(r.cpu_us_per_call, b.cpu_us_per_call if b else 0),
            "errors": r.errors,
            "calls": r.calls,
        }
        result.rows.append(Row(r.contender, metrics, case=case))
        if r.contender.startswith("ecsgrpc_"):
            if r.concurrency == 32:
                result.targets.append(
                    check(
                        NAME,
                        r.contender,
                        "x_native_throughput",
                        metrics["x_native_throughput"],
                        ">=",
                        0.90,
                        case=case,
                    )
                )
            result.targets.append(
                check(
                    NAME,
                    r.contender,
                    "x_native_p50",
                    metrics["x_native_p50"],
                    "<=",
                    1.10,
                    case=case,
                    note="p50 within 10 % of native round_robin's",
                )
            )
    for name, reason in ctx.skipped.items():
        for kind in KINDS:
            for concurrency in CONCURRENCIES:
                result.rows.append(Row(name, skipped=reason, case=f"{kind} c={concurrency}"))
