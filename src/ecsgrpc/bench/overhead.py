"""Overhead: throughput and latency of each contender over the same agents.

Contenders share one client process and the same agent processes; they run
interleaved, round after round, and the median round is reported, so slow
phases of a noisy machine hit every contender alike.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import grpc
from prometheus_client import CollectorRegistry

from ecsgrpc.balancing.channel import BalancedChannel
from ecsgrpc.endpoints import Endpoint
from ecsgrpc.local.process import AgentProcess
from ecsgrpc.testing import ManualResolver
from ecsgrpc.workflow import pb2, workflow_stub

__all__ = ["OverheadResult", "native_round_robin", "run_overhead"]

STREAM_EVENTS = 20  # START + 18 deltas + COMPLETE
_STREAM_REQUEST = pb2.ConversationRequest(
    conversation_id="bench",
    messages=[
        pb2.Message(role="user", content=" ".join(f"w{i}" for i in range(STREAM_EVENTS - 2)))
    ],
)
_UNARY_REQUEST = pb2.DescribeAgentRequest()


@dataclass(frozen=True, slots=True)
class OverheadResult:
    contender: str
    kind: str  # unary | stream
    concurrency: int
    calls: int
    calls_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_call: float
    errors: int


ChannelFactory = Callable[[Sequence[AgentProcess]], Any]


def native_round_robin(agents: Sequence[AgentProcess]) -> grpc.aio.Channel:
    """gRPC's own round_robin over a fixed ipv4: list, with client health checks."""
    target = "ipv4:" + ",".join(a.address for a in agents)
    config = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": ""},
    }
    return grpc.aio.insecure_channel(target, options=[("grpc.service_config", json.dumps(config))])


def raw_channel(agents: Sequence[AgentProcess]) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(agents[0].address)


def ecsgrpc_channel(policy: str) -> ChannelFactory:
    def factory(agents: Sequence[AgentProcess]) -> BalancedChannel:
        resolver = ManualResolver(
            Endpoint(a.host, a.port, {"instance_id": a.instance_id}) for a in agents
        )
        return BalancedChannel(
            resolver,
            target=f"bench-{policy}",
            policy=policy,
            registry=CollectorRegistry(),
            detect_ecs_zone=False,
        )

    return factory


CONTENDERS: dict[str, ChannelFactory] = {
    "raw_grpc_aio": raw_channel,
    "native_round_robin": native_round_robin,
    "ecsgrpc_round_robin": ecsgrpc_channel("round_robin"),
    "ecsgrpc_least_request": ecsgrpc_channel("least_request"),
}


async def _one_call(stub: Any, kind: str) -> None:
    if kind == "unary":
        await stub.DescribeAgent(_UNARY_REQUEST, timeout=10)
    else:
        count = 0
        async for _ in stub.ProcessConversation(_STREAM_REQUEST, timeout=10):
            count += 1
        if count != STREAM_EVENTS:
            raise RuntimeError(f"stream returned {count} events")


async def _measure(
    channel: Any, kind: str, concurrency: int, seconds: float
) -> tuple[list[float], int, float]:
    stub = workflow_stub(channel)
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                await _one_call(stub, kind)
            except grpc.RpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, time.process_time() - cpu0


async def _ready(channel: Any, agents: Sequence[AgentProcess]) -> None:
    if isinstance(channel, BalancedChannel):
        await channel.channel_ready(timeout=10, min_ready=len(agents))
    else:
        await asyncio.wait_for(channel.channel_ready(), 10)


async def run_overhead(
    agents: Sequence[AgentProcess],
    *,
    contenders: Sequence[str] = tuple(CONTENDERS),
    kinds: Sequence[str] = ("unary", "stream"),
    concurrencies: Sequence[int] = (1, 32),
    seconds: float = 2.0,
    rounds: int = 3,
    progress: Callable[[str], Awaitable[None] | None] | None = None,
) -> list[OverheadResult]:
    """Run every (contender, kind, concurrency) ``rounds`` times; median round kept."""
    channels = {name: CONTENDERS[name](agents) for name in contenders}
    samples: dict[tuple[str, str, int], list[OverheadResult]] = {}
    try:
        for channel in channels.values():
            await _ready(channel, agents)
        for kind in kinds:
            for concurrency in concurrencies:
                for channel in channels.values():  # warm-up
                    await _measure(channel, kind, concurrency, min(0.3, seconds))
                for round_no in range(rounds):
                    for name, channel in channels.items():
                        if progress is not None:
                            note = progress(f"{kind} c={concurrency} {name} round {round_no + 1}")
                            if note is not None:
                                await note
                        lat, errors, cpu = await _measure(channel, kind, concurrency, seconds)
                        samples.setdefault((name, kind, concurrency), []).append(
                            _summarise(name, kind, concurrency, lat, errors, cpu, seconds)
                        )
    finally:
        for channel in channels.values():
            await channel.close()
    return [_median(runs) for runs in samples.values()]


def _summarise(
    name: str,
    kind: str,
    concurrency: int,
    lat: list[float],
    errors: int,
    cpu: float,
    seconds: float,
) -> OverheadResult:
    ordered = sorted(lat) or [float("nan")]
    calls = len(lat)
    return OverheadResult(
        contender=name,
        kind=kind,
        concurrency=concurrency,
        calls=calls,
        calls_per_second=calls / seconds,
        p50_ms=ordered[len(ordered) // 2] * 1000,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        cpu_us_per_call=cpu / max(calls, 1) * 1e6,
        errors=errors,
    )


def _median(runs: list[OverheadResult]) -> OverheadResult:
    ordered = sorted(runs, key=lambda r: r.calls_per_second)
    return ordered[len(ordered) // 2]


def ratios(
    results: Sequence[OverheadResult], baseline: str = "native_round_robin"
) -> list[dict[str, Any]]:
    """Each result with its throughput and p50 as ratios to the baseline's."""
    base = {(r.kind, r.concurrency): r for r in results if r.contender == baseline}
    rows = []
    for r in results:
        b = base.get((r.kind, r.concurrency))
        row = asdict(r)
        if b is not None:
            row["throughput_ratio"] = (
                r.calls_per_second / b.calls_per_second if b.calls_per_second else None
            )
            row["p50_ratio"] = r.p50_ms / b.p50_ms if b.p50_ms else None
        rows.append(row)
    return rows


def _ratio(value: float, base: float) -> float | None:
    return value / base if base else None


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
