"""Scenario client_bound: what each call costs the client, where the client is the bottleneck.

``--servers N`` agent processes, each pinned (``os.sched_setaffinity``) to a
core of its own when the machine has them, the client (this process) pinned
to core 0; unary and server-streaming calls at concurrency 1, 32 and 256,
closed loop. Contenders run interleaved, round after round (the order
rotates each round), and the median round by throughput is kept. Every row
has the client's CPU per call (this process's CPU time / calls) and its ratio
to native ``round_robin`` measured in the same rounds.

On a machine without a core per server, the servers share cores and may
saturate before the client does: then throughput says little about the
client, and CPU per call is the number to read.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ecsgrpc_apps.bench.contenders import Client
from ecsgrpc_apps.bench.fleet import AgentFleet
from ecsgrpc_apps.bench.overhead import OverheadResult, measure
from ecsgrpc_apps.bench.results import Row, ScenarioResult, check
from ecsgrpc_apps.bench.settings import Context

__all__ = ["CONTENDERS", "run"]

NAME = "client_bound"
BASELINE = "native_round_robin"
CONTENDERS = (BASELINE, "ecsgrpc_round_robin", "ecsgrpc_least_request")
KINDS = ("unary", "stream")
CONCURRENCIES = (1, 32, 256)
COLUMNS = (
    "calls_per_second",
    "x_native_throughput",
    "cpu_us_per_call",
    "x_native_cpu_per_call",
    "p50_ms",
    "errors",
)
# First loopback address of this scenario's agents (the overhead scenario uses 41-43).
_FIRST_HOST = 61


def _cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return []


def placement(servers: int, cores: list[int]) -> tuple[set[int] | None, list[set[int] | None]]:
    """Cores for the client and for each server: the client gets the first core,
    the servers share out the others round-robin; no pinning on one core."""
    if len(cores) < 2:
        return None, [None] * servers
    rest = cores[1:]
    return {cores[0]}, [{rest[i % len(rest)]} for i in range(servers)]


@contextlib.contextmanager
def _pinned(client: set[int] | None) -> Iterator[None]:
    if client is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, client)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _median(runs: list[OverheadResult]) -> OverheadResult:
    return sorted(runs, key=lambda r: r.calls_per_second)[len(runs) // 2]


async def run(ctx: Context) -> ScenarioResult:
    s = ctx.settings
    cores = _cores()
    client_cores, server_cores = placement(s.client_bound_servers, cores)
    own_cores = len(cores) > s.client_bound_servers
    result = ScenarioResult(
        NAME,
        f"Client-bound cost: {s.client_bound_servers} agent process(es), closed loop, "
        "median of interleaved rounds",
        COLUMNS,
        params={
            "servers": s.client_bound_servers,
            "cores": len(cores),
            "servers_have_own_cores": own_cores,
            "client_core": sorted(client_cores) if client_cores else None,
            "seconds_per_round": s.overhead_seconds,
            "rounds": s.overhead_rounds,
            "baseline": BASELINE,
        },
    )
    if not own_cores:
        result.notes.append(
            f"{len(cores)} core(s) in all for the client and {s.client_bound_servers} "
            "server(s): the servers share cores, so they may saturate before the client; "
            "read CPU per call."
        )
    fleet = AgentFleet(s.client_bound_servers, first_host=_FIRST_HOST, dns=False)
    clients: list[Client] = []
    samples: dict[tuple[str, str, int], list[OverheadResult]] = {}
    try:
        spec = await fleet.start()
        for agent, pin in zip(fleet.agents, server_cores, strict=True):
            if pin is not None:
                os.sched_setaffinity(agent.pid, pin)
        wanted = [c for c in ctx.contenders if c.name in CONTENDERS]
        for contender in wanted:
            ctx.progress(f"{NAME}: connecting {contender.name}")
            clients.append(await contender.open(spec))
        with _pinned(client_cores):
            for kind in KINDS:
                for concurrency in CONCURRENCIES:
                    for client in clients if not s.quick else ():  # warm-up (full runs)
                        await measure(client, kind, concurrency, min(0.3, s.overhead_seconds))
                    for round_no in range(s.overhead_rounds):
                        shift = round_no % len(clients)
                        for client in clients[shift:] + clients[:shift]:
                            ctx.progress(
                                f"{NAME}: {kind} c={concurrency} round {round_no + 1}/"
                                f"{s.overhead_rounds} {client.name}"
                            )
                            r = await measure(client, kind, concurrency, s.overhead_seconds)
                            samples.setdefault((client.name, kind, concurrency), []).append(r)
    finally:
        for client in clients:
            await client.aclose()
        await fleet.aclose()
    _fill(result, [_median(runs) for runs in samples.values()], own_cores)
    return result


def _ratio(value: float, base: float) -> float | None:
    return value / base if base else None


def _fill(result: ScenarioResult, medians: list[OverheadResult], own_cores: bool) -> None:
    base = {(r.kind, r.concurrency): r for r in medians if r.contender == BASELINE}
    for r in medians:
        b = base.get((r.kind, r.concurrency))
        case = f"{r.kind} c={r.concurrency}"
        metrics = {
            "calls_per_second": r.calls_per_second,
            "x_native_throughput": _ratio(r.calls_per_second, b.calls_per_second if b else 0),
            "cpu_us_per_call": r.cpu_us_per_call,
            "x_native_cpu_per_call": _ratio(r.cpu_us_per_call, b.cpu_us_per_call if b else 0),
            "p50_ms": r.p50_ms,
            "errors": r.errors,
            "calls": r.calls,
        }
        result.rows.append(Row(r.contender, metrics, case=case))
        if r.contender == BASELINE:
            continue
        result.targets.append(
            check(
                NAME,
                r.contender,
                "x_native_cpu_per_call",
                metrics["x_native_cpu_per_call"],
                "<=",
                1.05,
                case=case,
                note="client CPU per call within 5 % of native round_robin's",
            )
        )
        if own_cores:  # throughput speaks of the client only when servers have spare cores
            result.targets.append(
                check(
                    NAME,
                    r.contender,
                    "x_native_throughput",
                    metrics["x_native_throughput"],
                    ">=",
                    0.95,
                    case=case,
                    note="servers on cores of their own: the client is the bottleneck",
                )
            )
