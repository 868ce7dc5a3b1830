"""Keepalive: client pings below the NLB idle timeout, at a rate our servers permit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from ecsgrpc.balancing.channel import BalancedChannel, channel_options
from ecsgrpc.config import (
    NLB_DEFAULT_TCP_IDLE_TIMEOUT_SECONDS,
    ServerSettings,
)
from ecsgrpc.endpoints import Endpoint
from ecsgrpc.server import server_options
from ecsgrpc.testing import ManualResolver
from ecsgrpc_apps.workflow import workflow_stub
from tests.support.agents import AgentProcess
from tests.support.load import unary_call


def test_client_keepalive_is_below_the_nlb_idle_timeout_and_permitted_by_servers() -> None:
    client = dict(channel_options())
    server = dict(server_options(ServerSettings()))
    ping_every_ms = client["grpc.keepalive_time_ms"]
    assert ping_every_ms < NLB_DEFAULT_TCP_IDLE_TIMEOUT_SECONDS * 1000
    # The server answers pings faster than this with a strike (too_many_pings).
    assert ping_every_ms >= server["grpc.http2.min_ping_interval_without_data_ms"]
    assert client["grpc.keepalive_permit_without_calls"] == 1
    assert server["grpc.keepalive_permit_without_calls"] == 1


@pytest.mark.timeout(60)
async def test_an_idle_connection_with_fast_keepalive_stays_up(
    agents: Callable[..., AgentProcess],
) -> None:
    # Same ratio as production (ping every 60 s, servers allow every 30 s), 40x faster.
    agent = agents("127.0.0.2", env={"GRPC_MIN_PING_INTERVAL_SECONDS": "0.75"})
    resolver = ManualResolver([Endpoint(agent.host, agent.port)])
    channel = BalancedChannel(
        resolver,
        target="keepalive",
        registry=CollectorRegistry(),
        detect_ecs_zone=False,
        options=[("grpc.keepalive_time_ms", 1500)],
    )
    async with channel:
        await channel.channel_ready(timeout=10)
        states = set()
        for _ in range(60):  # 6 s idle: four pings
            states.add(channel.endpoints()[0].state)
            await asyncio.sleep(0.1)
        assert states == {"ready"}  # never dropped (a too_many_pings GOAWAY would)
        assert (await unary_call(workflow_stub(channel))).error is None
    assert "too_many_pings" not in agent.log_text()
