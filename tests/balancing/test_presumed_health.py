"""A new endpoint that discovery reports healthy takes calls once connected, before its
health Watch first answers; one without that word from discovery waits for the Watch.

Why: in a CPU-starved client the first answer of a health Watch (a stream: several
completion-queue round trips) reached the balancer 2.8-11 s after the connection was
READY, so a task added by a scale-out got no call within the promised poll + 1 s,
while gRPC's xDS client (which trusts the control plane's health, gRFC A42) sent it
calls at once. The tests make a Watch that slow with real servers whose health service
delays its first answer; the Watch still decides once it answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from prometheus_client import CollectorRegistry

import ecsgrpc
from ecsgrpc.balancing.channel import BalancedChannel
from ecsgrpc.endpoints import ATTR_HEALTH, ATTR_INSTANCE_ID, Endpoint
from ecsgrpc.testing import ManualResolver
from ecsgrpc_apps.local.emulator import AwsEmulator
from ecsgrpc_apps.workflow import pb2, pb2_grpc, workflow_stub
from ecsgrpc_apps.workflow.agent import WorkflowAgentServicer
from ecsgrpc_apps.workflow.settings import AgentSettings
from tests.support.agents import wait_until

pytestmark = pytest.mark.timeout(60)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
POLL = 0.5
# Longer than the promise (poll + 1 s): a channel that waits for the Watch misses it.
SLOW_WATCH_SECONDS = 4.0


class SlowWatchHealth(HealthServicer):
    """grpc's own health service, except that each Watch waits ``delay`` s before its
    first answer (Check answers at once)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def Watch(self, request: Any, context: Any) -> None:
        await asyncio.sleep(self.delay)
        await super().Watch(request, context)


@asynccontextmanager
async def agent(
    host: str, instance_id: str, *, watch_delay: float = 0.0, status: int = SERVING
) -> AsyncIterator[grpc.aio.Server]:
    """A real Workflow Agent server on ``host`` (an ephemeral port) with its health
    status set to ``status``; ``server.address`` is ``host:port``."""
    server = grpc.aio.server()
    pb2_grpc.add_WorkflowAgentServicer_to_server(  # type: ignore[no-untyped-call]
        WorkflowAgentServicer(AgentSettings(instance_id=instance_id)), server
    )
    health = SlowWatchHealth(watch_delay)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port(f"{host}:0")
    await health.set("", status)
    await server.start()
    server.address = f"{host}:{port}"  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        await server.stop(0)


def _host_port(server: grpc.aio.Server) -> tuple[str, int]:
    host, port = server.address.rsplit(":", 1)  # type: ignore[attr-defined]
    return host, int(port)


def _endpoint(server: grpc.aio.Server, instance_id: str, **attrs: str) -> Endpoint:
    host, port = _host_port(server)
    return Endpoint(host, port, {ATTR_INSTANCE_ID: instance_id, **attrs})


class Traffic:
    """Unary calls in a loop, a few at a time; who served each and when."""

    def __init__(self, channel: BalancedChannel, workers: int = 4) -> None:
        self._stub = workflow_stub(channel)
        self.served: list[tuple[float, str]] = []
        self.errors: list[str] = []
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []

    async def _work(self) -> None:
        while True:
            try:
                info = await self._stub.DescribeAgent(pb2.DescribeAgentRequest(), timeout=5)
                self.served.append((time.monotonic(), str(info.instance_id)))
            except grpc.aio.AioRpcError as exc:
                self.errors.append(exc.code().name)
            await asyncio.sleep(0.005)

    def first(self, instance_id: str, since: float = 0.0) -> float | None:
        return next((t for t, who in self.served if who == instance_id and t >= since), None)

    async def __aenter__(self) -> Traffic:
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _status(channel: BalancedChannel, address: str) -> Any:
    return next((s for s in channel.endpoints() if s.address == address), None)


async def test_a_new_task_healthy_in_cloud_map_gets_calls_within_a_poll_and_a_second(
    aws: AwsEmulator,
) -> None:
    """The scale-out promise through Cloud Map, with a new task whose Watch answers late."""
    svc = await asyncio.to_thread(aws.provision_cloudmap)

    async def register(server: grpc.aio.Server, instance_id: str) -> None:
        host, port = _host_port(server)
        attrs = {"AWS_INSTANCE_IPV4": host, "AWS_INSTANCE_PORT": str(port)}
        await asyncio.to_thread(aws.register_instance, svc, instance_id, attrs)
        await asyncio.to_thread(aws.set_instance_health, svc, instance_id, healthy=True)

    async with AsyncExitStack() as stack:
        old = [await stack.enter_async_context(agent(f"127.0.13.{i}", f"old-{i}")) for i in (1, 2)]
        for i, server in enumerate(old, start=1):
            await register(server, f"old-{i}")
        target = f"cloudmap://workflow.local/workflow-agent?poll={POLL}"
        channel = ecsgrpc.connect(target, registry=CollectorRegistry())
        await stack.enter_async_context(channel)
        await channel.channel_ready(timeout=10, min_ready=2)
        new = await stack.enter_async_context(
            agent("127.0.13.3", "new", watch_delay=SLOW_WATCH_SECONDS)
        )
        async with Traffic(channel) as traffic:
            await asyncio.sleep(0.3)
            await register(new, "new")
            registered = time.monotonic()
            got = await wait_until(lambda: traffic.first("new") is not None, POLL + 1.0)
            status = _status(channel, new.address)  # type: ignore[attr-defined]
        assert got, f"no call reached the new task within {POLL + 1.0:g}s: {status}"
        first = traffic.first("new")
        assert first is not None and first - registered <= POLL + 1.0
        # It took calls on Cloud Map's word: its own Watch had not answered yet.
        assert status.health == "unknown" and status.health_presumed, status
        assert traffic.errors == []


async def test_the_watchs_first_answer_ends_the_presumption() -> None:
    """Discovery says HEALTHY, the server's Watch says NOT_SERVING: the Watch wins."""
    delay = 2.0
    async with (
        agent("127.0.13.4", "a") as a,
        agent("127.0.13.5", "b", watch_delay=delay, status=NOT_SERVING) as b,
    ):
        resolver = ManualResolver(
            [
                _endpoint(a, "a", **{ATTR_HEALTH: "HEALTHY"}),
                _endpoint(b, "b", **{ATTR_HEALTH: "HEALTHY"}),
            ]
        )
        started = time.monotonic()
        async with BalancedChannel(
            resolver, target="presumed", registry=CollectorRegistry(), detect_ecs_zone=False
        ) as channel:
            await channel.channel_ready(timeout=10, min_ready=2)
            assert time.monotonic() - started < delay  # b on discovery's word, not its Watch
            assert _status(channel, b.address).health_presumed  # type: ignore[attr-defined]
            gone = await wait_until(lambda: channel.ready_count == 1, delay + 5.0)
            status = _status(channel, b.address)  # type: ignore[attr-defined]
            assert gone, status
            assert status.health == "not_serving" and not status.health_presumed, status
            stub = workflow_stub(channel)
            served = {
                (await stub.DescribeAgent(pb2.DescribeAgentRequest())).instance_id
                for _ in range(20)
            }
            assert served == {"a"}


@pytest.mark.parametrize("health", [None, "UNHEALTHY", "UNKNOWN"])
async def test_without_discoverys_healthy_a_new_endpoint_waits_for_its_watch(
    health: str | None,
) -> None:
    """gRFC A17 as before: no HEALTHY from discovery (static lists, DNS, an unhealthy
    instance), no calls until the Watch says SERVING."""
    delay = 1.5
    attrs = {} if health is None else {ATTR_HEALTH: health}
    async with (
        agent("127.0.13.6", "a") as a,
        agent("127.0.13.7", "slow", watch_delay=delay) as slow,
    ):
        resolver = ManualResolver([_endpoint(a, "a"), _endpoint(slow, "slow", **attrs)])
        opened = time.monotonic()  # the Watch starts after this
        async with BalancedChannel(
            resolver, target="a17", registry=CollectorRegistry(), detect_ecs_zone=False
        ) as channel:
            await channel.channel_ready(timeout=10, min_ready=1)
            async with Traffic(channel) as traffic:
                ready: Callable[[], bool] = lambda: channel.ready_count == 2  # noqa: E731
                assert await wait_until(ready, delay + 5.0)
                became_ready = time.monotonic()
                assert await wait_until(lambda: traffic.first("slow") is not None, 2.0)
            status = _status(channel, slow.address)  # type: ignore[attr-defined]
        assert became_ready - opened >= delay, "pickable before its Watch answered"
        first = traffic.first("slow")
        assert first is not None and first - opened >= delay
        assert status.health == "serving" and not status.health_presumed
