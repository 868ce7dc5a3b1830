"""Real gRPC servers inside the test process (for behaviours a test must control)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from ecsgrpc.config import ServerSettings
from ecsgrpc.server import Server, ServiceSpec
from ecsgrpc_apps.workflow import pb2
from ecsgrpc_apps.workflow.agent import WorkflowAgentServicer, agent_service
from ecsgrpc_apps.workflow.settings import AgentSettings


class FailingAgent(WorkflowAgentServicer):
    """DescribeAgent waits ``delay`` then fails with ``code``; counts attempts."""

    def __init__(self, instance_id: str, *, code: grpc.StatusCode, delay: float = 0.0) -> None:
        super().__init__(AgentSettings(instance_id=instance_id))
        self.code = code
        self.delay = delay
        self.attempts = 0
        self.failing = True

    async def DescribeAgent(self, request, context):  # type: ignore[no-untyped-def]
        self.attempts += 1
        if self.failing:
            if self.delay:
                await asyncio.sleep(self.delay)
            await context.abort(self.code, f"{self.instance_id} fails on purpose")
        return pb2.AgentInfo(instance_id=self.instance_id)


@asynccontextmanager
async def running_server(
    host: str, servicer: WorkflowAgentServicer, *extra: ServiceSpec
) -> AsyncIterator[Server]:
    settings = ServerSettings(host=host, port=0, drain_seconds=0, grace_seconds=0.5)
    server = Server([agent_service(servicer), *extra], settings=settings)
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown()


def echo_service() -> ServiceSpec:
    """``/test.Echo/Sum`` (stream-unary) and ``/test.Echo/Echo`` (stream-stream), raw bytes."""

    async def total(requests, context):  # type: ignore[no-untyped-def]
        return str(sum([int(r) async for r in requests])).encode()

    async def echo(requests, context):  # type: ignore[no-untyped-def]
        async for r in requests:
            yield r

    handler = grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "Sum": grpc.stream_unary_rpc_method_handler(total),
            "Echo": grpc.stream_stream_rpc_method_handler(echo),
        },
    )
    return ServiceSpec("test.Echo", lambda server: server.add_generic_rpc_handlers((handler,)))
