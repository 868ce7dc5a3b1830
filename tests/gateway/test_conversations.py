"""POST /v1/conversations end to end: HTTP -> gateway -> balanced channel -> agent processes."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable

import pytest

from tests.gateway.support import SSE, conversation, endpoint, read_frames, running_gateway
from tests.support.agents import AgentProcess, wait_until

pytestmark = pytest.mark.timeout(60)


async def test_sse_streams_every_event_in_order_then_done(
    agents: Callable[..., AgentProcess],
) -> None:
    procs = [agents(f"127.0.0.{i}") for i in (2, 3, 4)]
    async with running_gateway([endpoint(p) for p in procs]) as gw:
        assert await wait_until(lambda: gw.channel.ready_count == 3, 10)
        served: Counter[str] = Counter()
        async with gw.http() as http:
            for n in range(9):
                text = f"hello number {n} from the test"
                async with http.stream(
                    "POST", "/v1/conversations", json=conversation(text, f"sse-{n}"), headers=SSE
                ) as response:
                    assert response.status_code == 200
                    assert response.headers["content-type"].startswith("text/event-stream")
                    frames = await read_frames(response)
                events = [f for f in frames if f.event == "message"]
                assert [e.data["sequence"] for e in events] == list(range(len(events)))
                assert [e.id for e in events] == [str(i) for i in range(len(events))]
                kinds = [e.data["kind"] for e in events]
                assert kinds == ["start"] + ["delta"] * 6 + ["complete"]
                assert "".join(e.data["text"] for e in events) == text
                assert {e.data["conversation_id"] for e in events} == {f"sse-{n}"}
                assert len({e.data["served_by"] for e in events}) == 1
                assert frames[-1].event == "done"
                done = frames[-1].data
                assert done == {
                    "conversation_id": f"sse-{n}",
                    "reply": text,
                    "served_by": events[0].data["served_by"],
                    "events": 8,
                }
                served[done["served_by"]] += 1
    assert set(served) <= {p.instance_id for p in procs}
    assert len(served) >= 2, served  # the balancer spreads conversations


async def test_sse_events_arrive_as_the_agent_produces_them(
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents("127.0.0.2", args=("--event-delay", "0.3"))
    async with running_gateway([endpoint(agent)]) as gw, gw.http() as http:
        loop = asyncio.get_running_loop()
        arrivals: list[float] = []
        async with http.stream(
            "POST", "/v1/conversations", json=conversation("one two three four"), headers=SSE
        ) as response:
            started = loop.time()
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    arrivals.append(loop.time() - started)
    # START, 4 deltas, COMPLETE, done: spread over ~1.5 s, not all at the end.
    assert len(arrivals) == 7
    assert arrivals[1] < 0.9 and arrivals[-1] > 1.2, arrivals


async def test_json_mode_returns_the_assembled_reply(agents: Callable[..., AgentProcess]) -> None:
    agent = agents("127.0.0.2")
    async with running_gateway([endpoint(agent)]) as gw, gw.http() as http:
        response = await http.post(
            "/v1/conversations",
            json={
                "conversation_id": "json-1",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "first question"},
                    {"role": "assistant", "content": "an answer"},
                    {"role": "user", "content": "the  last   question"},
                ],
                "metadata": {"tenant": "t-1"},
            },
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {
            "conversation_id": "json-1",
            "reply": "the last question",
            "served_by": agent.instance_id,
            "events": 5,
        }
        # Without a conversation_id one is generated.
        generated = (await http.post("/v1/conversations", json=conversation("hi"))).json()
        assert re.fullmatch(r"[0-9a-f]{32}", generated["conversation_id"])
        assert generated["reply"] == "hi"
