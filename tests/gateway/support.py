"""The gateway in-process (uvicorn on a loopback address) and an SSE reader, for tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from ecsgrpc.balancing.channel import BalancedChannel
from ecsgrpc.endpoints import Endpoint
from ecsgrpc.metrics import gateway_metrics
from ecsgrpc.testing import ManualResolver
from ecsgrpc_apps.gateway import (
    GatewayServer,
    GatewaySettings,
    Lifecycle,
    create_app,
    uvicorn_config,
)
from ecsgrpc_apps.workflow.client import WorkflowClient
from tests.support.agents import AgentProcess, wait_until


def endpoint(agent: AgentProcess) -> Endpoint:
    return Endpoint(agent.host, agent.port, {"instance_id": agent.instance_id})


def conversation(text: str, cid: str | None = None, role: str = "user") -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [{"role": role, "content": text}]}
    if cid is not None:
        body["conversation_id"] = cid
    return body


@dataclass
class RunningGateway:
    url: str
    server: GatewayServer
    registry: CollectorRegistry
    channel: BalancedChannel
    resolver: ManualResolver

    def http(self, timeout: float = 10.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=timeout)


@asynccontextmanager
async def running_gateway(
    endpoints: list[Endpoint] | None = None,
    *,
    host: str = "127.0.0.10",
    **overrides: Any,
) -> AsyncIterator[RunningGateway]:
    """A gateway over a ManualResolver; stopped (client closed) on exit."""
    registry = CollectorRegistry()
    resolver = ManualResolver(endpoints or [])
    channel = BalancedChannel(resolver, target="test", detect_ecs_zone=False, registry=registry)
    values: dict[str, Any] = {
        "host": host,
        "port": 0,
        "drain_seconds": 0,
        "grace_seconds": 2,
        "access_log": False,
        "endpoint_wait_seconds": 2,
        "request_timeout_seconds": 10,
    }
    values.update(overrides)
    settings = GatewaySettings(**values)
    client = WorkflowClient(channel=channel, timeout=settings.request_timeout_seconds)
    lifecycle = Lifecycle(gateway_metrics(registry))
    app = create_app(client, settings, registry=registry, lifecycle=lifecycle)
    server = GatewayServer(
        uvicorn_config(app, settings),
        lifecycle=lifecycle,
        drain_seconds=settings.drain_seconds,
        install_signals=False,
    )
    task = asyncio.create_task(server.serve())
    assert await wait_until(lambda: server.started or task.done(), 10), "gateway did not start"
    assert server.started, "gateway failed to start"
    try:
        yield RunningGateway(f"http://{server.addresses()[0]}", server, registry, channel, resolver)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        await channel.close()


@dataclass(frozen=True)
class Frame:
    event: str
    data: Any
    id: str | None


async def read_frames(
    response: httpx.Response | AsyncIterator[str], limit: int | None = None
) -> list[Frame]:
    """Parse SSE frames from a streaming response (all, or the first ``limit``).

    Pass ``response.aiter_lines()`` instead of the response to read it in parts.
    """
    frames: list[Frame] = []
    event, data, ident = "message", [], None
    lines = response.aiter_lines() if isinstance(response, httpx.Response) else response
    async for line in lines:
        if line == "":
            if data:
                frames.append(Frame(event, json.loads("\n".join(data)), ident))
                if limit is not None and len(frames) >= limit:
                    return frames
            event, data, ident = "message", [], None
        elif line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            data.append(line[len("data: ") :])
        elif line.startswith("id: "):
            ident = line[len("id: ") :]
    return frames


SSE = {"accept": "text/event-stream"}
