"""A conversation whose agent dies mid-stream is restarted once on another agent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.gateway.support import SSE, conversation, endpoint, read_frames, running_gateway
from tests.support.agents import AgentProcess, wait_until

pytestmark = pytest.mark.timeout(60)
TEXT = " ".join(f"word{i}" for i in range(20))


async def test_json_mode_restarts_silently_and_returns_the_whole_reply(
    agents: Callable[..., AgentProcess],
) -> None:
    victim = agents("127.0.0.2", args=("--event-delay", "0.1"))
    spare = agents("127.0.0.3")
    async with running_gateway([endpoint(victim)]) as gw, gw.http() as http:
        assert await wait_until(lambda: gw.channel.ready_count == 1, 10)
        pending = asyncio.create_task(http.post("/v1/conversations", json=conversation(TEXT, "j1")))
        await asyncio.sleep(0.6)  # a few events in
        gw.resolver.update([endpoint(victim), endpoint(spare)])
        assert await wait_until(lambda: gw.channel.ready_count == 2, 5)
        victim.kill()
        response = await pending
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["reply"] == TEXT
        assert body["served_by"] == spare.instance_id
        assert body["events"] == 22
        restarts = gw.registry.get_sample_value("ecsgrpc_gateway_restarts_total", {"mode": "json"})
        assert restarts == 1


async def test_sse_mode_sends_a_reset_then_the_whole_new_stream(
    agents: Callable[..., AgentProcess],
) -> None:
    victim = agents("127.0.0.4", args=("--event-delay", "0.1"))
    spare = agents("127.0.0.5")
    async with running_gateway([endpoint(victim)]) as gw, gw.http() as http:
        assert await wait_until(lambda: gw.channel.ready_count == 1, 10)
        async with http.stream(
            "POST", "/v1/conversations", json=conversation(TEXT, "s1"), headers=SSE
        ) as response:
            lines = response.aiter_lines()
            head = await read_frames(lines, limit=3)
            gw.resolver.update([endpoint(victim), endpoint(spare)])
            assert await wait_until(lambda: gw.channel.ready_count == 2, 5)
            victim.kill()
            rest = await read_frames(lines)
    assert [f.data["sequence"] for f in head] == [0, 1, 2]
    assert {f.data["served_by"] for f in head} == {victim.instance_id}
    kinds = [f.event for f in rest]
    reset_at = kinds.index("reset")
    assert rest[reset_at].data["attempt"] == 2
    after = [f for f in rest[reset_at + 1 :] if f.event == "message"]
    # Sequence restarts at 0: the client was told to discard what it had.
    assert [f.data["sequence"] for f in after] == list(range(22))
    assert {f.data["served_by"] for f in after} == {spare.instance_id}
    assert kinds[-1] == "done"
    assert rest[-1].data["reply"] == TEXT


async def test_without_restart_the_client_gets_the_error(
    agents: Callable[..., AgentProcess],
) -> None:
    victim = agents("127.0.0.6", args=("--event-delay", "0.1"))
    spare = agents("127.0.0.7")
    async with (
        running_gateway([endpoint(victim)], restart_interrupted=False) as gw,
        gw.http() as http,
    ):
        assert await wait_until(lambda: gw.channel.ready_count == 1, 10)
        pending = asyncio.create_task(http.post("/v1/conversations", json=conversation(TEXT, "n1")))
        await asyncio.sleep(0.6)
        gw.resolver.update([endpoint(victim), endpoint(spare)])
        victim.kill()
        response = await pending
    assert response.status_code == 503
    assert "not retried" in response.json()["error"]["message"]
