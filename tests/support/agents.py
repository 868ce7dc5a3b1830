"""Run reference agents as real processes on loopback addresses, for tests."""

from __future__ import annotations

import asyncio
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecsgrpc_apps.local.process import AgentProcess, start_agent

__all__ = ["AgentProcess", "health_status", "start_agent", "wait_until"]


async def health_status(address: str, service: str = "", timeout: float = 2.0) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
        return int(reply.status)


async def wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    """Poll a sync or async predicate until true or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return True
        await asyncio.sleep(interval)
    return False
