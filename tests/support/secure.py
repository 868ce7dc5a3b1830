"""In-process agents with security settings, and small client helpers, for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from ecsgrpc.balancing.channel import BalancedChannel
from ecsgrpc.config import ServerSettings
from ecsgrpc.endpoints import Endpoint
from ecsgrpc.security.client import ClientSecurity
from ecsgrpc.server import Server, ServiceSpec
from ecsgrpc.testing import ManualResolver
from ecsgrpc_apps.workflow.agent import WorkflowAgentServicer, agent_service
from ecsgrpc_apps.workflow.settings import AgentSettings


@asynccontextmanager
async def secure_server(
    host: str,
    *extra: ServiceSpec,
    agent: AgentSettings | None = None,
    servicer: WorkflowAgentServicer | None = None,
    registry: CollectorRegistry | None = None,
    **settings: Any,
) -> AsyncIterator[Server]:
    """A started in-process agent on ``host`` with ``ServerSettings(**settings)``."""
    base: dict[str, Any] = {"host": host, "port": 0, "drain_seconds": 0, "grace_seconds": 0.5}
    base.update(settings)
    servicer = servicer or WorkflowAgentServicer(agent or AgentSettings(instance_id=host))
    server = Server(
        [agent_service(servicer), *extra],
        settings=ServerSettings(**base),
        registry=registry or CollectorRegistry(),
    )
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown()


def balanced(address: str, **kw: Any) -> BalancedChannel:
    """A BalancedChannel over one endpoint, isolated metrics, no zone lookup."""
    host, port = address.rsplit(":", 1)
    kw.setdefault("registry", CollectorRegistry())
    kw.setdefault("connect_timeout", 5.0)
    return BalancedChannel(
        ManualResolver([Endpoint(host, int(port))]), target=address, detect_ecs_zone=False, **kw
    )


async def health_check(
    address: str, credentials: grpc.ChannelCredentials | None = None, **options: Any
) -> int:
    """One health Check over a plain grpc.aio channel (raises AioRpcError)."""
    opts = list(options.items())
    channel = (
        grpc.aio.insecure_channel(address, options=opts)
        if credentials is None
        else grpc.aio.secure_channel(address, credentials, options=opts)
    )
    async with channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=3
        )
        return int(reply.status)


__all__ = ["ClientSecurity", "balanced", "health_check", "secure_server"]
