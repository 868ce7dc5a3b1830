"""Scenario client_bound: what each call costs the client, where the client is the bottleneck.

``--servers N`` agent processes, each pinned (``os.sched_setaffinity``) to a
core of its own when the machine has them, the client (this process) pinned
to core 0; unary and server-streaming calls at concurrency 1, 32 and 256,
closed loop.

Each round is a fixed number of calls (the same work for every contender), so
CPU per call is this process's CPU time over those calls. Many short rounds
run interleaved (the order rotates each round); a contender's ratio to native
``round_robin`` is taken round by round (paired: the same moment of a noisy
machine), and the table gives the median ratio with its quartiles. A second
native ``round_robin`` channel (``native_round_robin_aa``, an A/A control) is
measured like the others: its ratios, which should be 1, show the noise floor.

On a machine without a core per server, the servers share cores and may
saturate before the client does: then throughput says little about the
client, and CPU per call is the number to read.
"""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Iterator

from ecsgrpc_apps.bench.closed_loop import OverheadResult, quartiles, ratio, run_round
from ecsgrpc_apps.bench.contenders import Client
from ecsgrpc_apps.bench.fleet import AgentFleet
from ecsgrpc_apps.bench.results import Row, ScenarioResult, check
from ecsgrpc_apps.bench.settings import Context

__all__ = ["CONTENDERS", "run"]

NAME = "client_bound"
BASELINE = "native_round_robin"
CONTROL = "native_round_robin_aa"  # a second native channel: the A/A control
CONTENDERS = (BASELINE, "ecsgrpc_round_robin", "ecsgrpc_least_request")
KINDS = ("unary", "stream")
CONCURRENCIES = (1, 32, 256)
COLUMNS = (
    "calls_per_second",
    "x_native_throughput",
    "cpu_us_per_call",
    "x_native_cpu_per_call",
    "x_cpu_p25",
    "x_cpu_p75",
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


def calls_per_round(kind: str, concurrency: int, unary_calls: int, per_worker: int = 4) -> int:
    """The fixed work of one round: ``unary_calls`` unary calls, a tenth as many streams
    (about 20 messages each), and at least ``per_worker`` calls per worker."""
    base = unary_calls if kind == "unary" else max(1, unary_calls // 10)
    return max(base, per_worker * concurrency)


async def run(ctx: Context) -> ScenarioResult:
    s = ctx.settings
    cores = _cores()
    client_cores, server_cores = placement(s.client_bound_servers, cores)
    own_cores = len(cores) > s.client_bound_servers
    result = ScenarioResult(
        NAME,
        f"Client-bound cost: {s.client_bound_servers} agent process(es), closed loop, "
        "fixed calls per round, median of paired ratios over interleaved rounds",
        COLUMNS,
        params={
            "servers": s.client_bound_servers,
            "cores": len(cores),
            "servers_have_own_cores": own_cores,
            "client_core": sorted(client_cores) if client_cores else None,
            "unary_calls_per_round": s.client_bound_calls,
            "rounds": s.client_bound_rounds,
            "min_calls_per_worker": s.client_bound_per_worker,
            "baseline": BASELINE,
            "control": CONTROL,
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
        for contender in (c for c in ctx.contenders if c.name in CONTENDERS):
            ctx.progress(f"{NAME}: connecting {contender.name}")
            clients.append(await contender.open(spec))
            if contender.name == BASELINE:
                control = await contender.open(spec)
                control.name = CONTROL
                clients.append(control)
        with _pinned(client_cores):
            for kind in KINDS:
                for concurrency in CONCURRENCIES:
                    calls = calls_per_round(
                        kind, concurrency, s.client_bound_calls, s.client_bound_per_worker
                    )
                    for client in clients:  # warm-up
                        await run_round(client, kind, concurrency, calls=max(1, calls // 4))
                    for round_no in range(s.client_bound_rounds):
                        ctx.progress(
                            f"{NAME}: {kind} c={concurrency} round {round_no + 1}/"
                            f"{s.client_bound_rounds}"
                        )
                        shift = round_no % len(clients)
                        for client in clients[shift:] + clients[:shift]:
                            r = await run_round(client, kind, concurrency, calls=calls)
                            samples.setdefault((client.name, kind, concurrency), []).append(r)
    finally:
        for client in clients:
            await client.aclose()
        await fleet.aclose()
    _fill(result, samples, own_cores)
    return result


def _fill(
    result: ScenarioResult,
    samples: dict[tuple[str, str, int], list[OverheadResult]],
    own_cores: bool,
) -> None:
    for (name, kind, concurrency), runs in samples.items():
        base = samples.get((BASELINE, kind, concurrency), [])
        paired = list(zip(runs, base, strict=False))  # round i of both
        cpu_ratios = [x for r, b in paired if (x := ratio(r.cpu_us_per_call, b.cpu_us_per_call))]
        rate_ratios = [x for r, b in paired if (x := ratio(r.calls_per_second, b.calls_per_second))]
        cpu_q1, cpu_median, cpu_q3 = quartiles(cpu_ratios)
        case = f"{kind} c={concurrency}"
        metrics = {
            "calls_per_second": statistics.median(r.calls_per_second for r in runs),
            "x_native_throughput": statistics.median(rate_ratios) if rate_ratios else None,
            "cpu_us_per_call": statistics.median(r.cpu_us_per_call for r in runs),
            "x_native_cpu_per_call": cpu_median if cpu_ratios else None,
            "x_cpu_p25": cpu_q1 if cpu_ratios else None,
            "x_cpu_p75": cpu_q3 if cpu_ratios else None,
            "p50_ms": statistics.median(r.p50_ms for r in runs),
            "errors": sum(r.errors for r in runs),
            "calls": sum(r.calls for r in runs),
        }
        result.rows.append(Row(name, metrics, case=case))
        if name in (BASELINE, CONTROL):
            continue
        result.targets.append(
            check(
                NAME,
                name,
                "x_native_cpu_per_call",
                metrics["x_native_cpu_per_call"],
                "<=",
                1.05,
                case=case,
                note="client CPU per call within 5 % of native round_robin's "
                "(median of paired rounds; compare the A/A control's spread)",
            )
        )
        if own_cores:  # throughput speaks of the client only when servers have spare cores
            result.targets.append(
                check(
                    NAME,
                    name,
                    "x_native_throughput",
                    metrics["x_native_throughput"],
                    ">=",
                    0.95,
                    case=case,
                    note="servers on cores of their own: the client is the bottleneck",
                )
            )
