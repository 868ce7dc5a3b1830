"""Admission, deadlines and the rough edges of POST /v1/conversations, with real agents."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from ecsgrpc.endpoints import Endpoint
from ecsgrpc_apps.workflow.agent import WorkflowAgentServicer
from ecsgrpc_apps.workflow.settings import AgentSettings
from tests.gateway.support import SSE, RunningGateway, conversation, read_frames, running_gateway
from tests.gateway.test_hostile import address, metric, raw_exchange, status_and_body
from tests.support.agents import wait_until
from tests.support.servers import running_server

pytestmark = pytest.mark.timeout(60)

HOST = "127.0.0.43"
AGENT_HOST = "127.0.0.44"


@contextlib.asynccontextmanager
async def gateway(delay: float = 0.0, **settings: object) -> AsyncIterator[RunningGateway]:
    agent = WorkflowAgentServicer(AgentSettings(instance_id="agent-a", event_delay_seconds=delay))
    async with running_server(AGENT_HOST, agent) as server:
        ep = Endpoint(AGENT_HOST, server.port, {"instance_id": "agent-a"})
        async with running_gateway([ep], host=HOST, **settings) as gw:
            await gw.channel.channel_ready(timeout=10)
            yield gw


async def calls_made(gw: RunningGateway) -> float:
    total = 0.0
    for family in gw.registry.collect():
        if family.name == "ecsgrpc_client_call_duration_seconds":
            total += sum(s.value for s in family.samples if s.name.endswith("_count"))
    return total


async def test_over_the_limit_a_request_is_refused_at_once_before_its_body() -> None:
    # Fixed limit of 2; two slow conversations hold it.
    async with gateway(delay=1.0, max_concurrency=2, adaptive_concurrency=False) as gw:
        async with gw.http() as http:
            held = [
                asyncio.create_task(http.post("/v1/conversations", json=conversation("a b")))
                for _ in range(2)
            ]
            await asyncio.sleep(0.5)
            # A head that announces a body it never sends: answered anyway, so the
            # refusal came before the body was read.
            started = time.perf_counter()
            answer = await raw_exchange(
                gw,
                b"POST /v1/conversations HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
                b"content-length: 1000\r\nconnection: close\r\n\r\n",
            )
            elapsed = time.perf_counter() - started
            status, body = status_and_body(answer)
            assert status == 503
            assert b"\r\nretry-after: 1\r\n" in answer.lower()
            assert body["error"]["code"] == "overloaded"  # type: ignore[index]
            assert elapsed < 1.0  # not waiting for the body or for the held ones
            for task in held:
                assert (await task).status_code == 200
        assert await metric(gw, "ecsgrpc_gateway_refusals_total", reason="concurrency") == 1
        assert (
            await metric(
                gw,
                "ecsgrpc_gateway_requests_total",
                route="/v1/conversations",
                method="POST",
                status="503",
            )
            == 1
        )


def route_spy(front: Any) -> tuple[list[str], Callable[[Any, Any, Any], Awaitable[None]]]:
    """The paths that reach the route's ASGI entry, and the spy that records them
    (install it as ``front.conversation``)."""
    entered: list[str] = []
    serve = front.conversation

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        entered.append(scope["path"])
        await serve(scope, receive, send)

    return entered, spy


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    """One HTTP/1.1 answer with a Content-Length body: status, head, body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    return int(head.split(b" ", 2)[1]), head, await reader.readexactly(length)


@pytest.mark.parametrize("parser", ["httptools", "h11"])
async def test_at_the_limit_conversations_are_refused_at_the_door_and_the_connection_lives_on(
    parser: str,
) -> None:
    async with gateway(
        delay=1.0, max_concurrency=1, adaptive_concurrency=False, http_parser=parser
    ) as gw:
        front = gw.server.config.app.front
        entered, spy = route_spy(front)
        body = json.dumps(conversation("refused")).encode()
        post = (
            b"POST /v1/conversations HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % len(body)
        )
        async with gw.http() as http:
            held = asyncio.create_task(http.post("/v1/conversations", json=conversation("a b")))
            assert await wait_until(lambda: front.limiter.in_flight == 1, 5)
            front.conversation = spy
            reader, writer = await asyncio.open_connection(*address(gw))
            try:
                # A refused conversation, its body and a pipelined request, in one write.
                writer.write(post + body + b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n")
                status, head, answer = await _answer(reader)
                assert status == 503
                assert b"\r\nretry-after: 1\r\n" in head
                assert json.loads(answer)["error"]["code"] == "overloaded"
                assert (await _answer(reader))[0] == 200  # the same connection goes on
                # A body that comes in pieces after its answer is dropped as it comes.
                writer.write(post + body[:7])
                await writer.drain()
                assert (await _answer(reader))[0] == 503
                writer.write(body[7:])
                writer.write(b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n")
                assert (await _answer(reader))[0] == 200
                assert entered == []  # neither reached the ASGI app
                assert (await held).status_code == 200
                # Below the limit again: the same connection is served in full.
                writer.write(post + body)
                status, _, answer = await _answer(reader)
                assert status == 200, answer
                assert json.loads(answer)["reply"] == "refused"
                assert entered == ["/v1/conversations"]
            finally:
                writer.close()
        assert await metric(gw, "ecsgrpc_gateway_refusals_total", reason="concurrency") == 2
        assert (
            await metric(
                gw,
                "ecsgrpc_gateway_requests_total",
                route="/v1/conversations",
                method="POST",
                status="503",
            )
            == 2
        )


@pytest.mark.parametrize("parser", ["httptools", "h11"])
async def test_heads_that_arrive_together_past_the_limit_are_refused_at_the_door(
    parser: str,
) -> None:
    """Conversations whose heads arrive in one turn of the event loop: the door
    counts the ones it let through, so those past the limit are refused there,
    before parsing, not after it."""
    async with gateway(
        delay=0.5, max_concurrency=1, adaptive_concurrency=False, http_parser=parser
    ) as gw:
        front = gw.server.config.app.front
        entered, spy = route_spy(front)
        front.conversation = spy
        body = json.dumps(conversation("together")).encode()
        post = (
            b"POST /v1/conversations HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % len(body)
        ) + body
        connections = [await asyncio.open_connection(*address(gw)) for _ in range(4)]
        try:
            for _, writer in connections:  # no await between: one turn of the loop reads all
                writer.write(post)
            statuses = sorted([(await _answer(reader))[0] for reader, _ in connections])
        finally:
            for _, writer in connections:
                writer.close()
        assert statuses == [200, 503, 503, 503]
        assert entered == ["/v1/conversations"]  # the three refusals never reached the app


async def test_sse_streams_leave_the_limit_at_their_first_event() -> None:
    # Limit 2, yet 6 slow streams run at once: past its first event a stream
    # waits on its agent and no longer counts.
    async with gateway(delay=0.3, max_concurrency=2, adaptive_concurrency=False) as gw:
        async with gw.http(timeout=20) as http:

            async def stream() -> int:
                async with http.stream(
                    "POST", "/v1/conversations", json=conversation("a b c"), headers=SSE
                ) as response:
                    frames = await read_frames(response)
                    return len(frames) if response.status_code == 200 else -response.status_code

            results = []
            for _ in range(6):
                results.append(asyncio.create_task(stream()))
                await asyncio.sleep(0.1)
            assert await asyncio.gather(*results) == [6] * 6  # start, 3 deltas, complete, done


async def test_a_long_sse_reply_is_not_held_for_the_done_frame() -> None:
    async with gateway(sse_done_reply_max_chars=10) as gw, gw.http() as http:
        for text, expected in (("short one", "short one"), ("a longer reply", None)):
            async with http.stream(
                "POST", "/v1/conversations", json=conversation(text), headers=SSE
            ) as response:
                frames = await read_frames(response)
            deltas = "".join(f.data["text"] for f in frames if f.event == "message")
            assert deltas == text  # the client has the whole reply from the deltas
            assert frames[-1].event == "done"
            assert frames[-1].data["reply"] == expected
            assert frames[-1].data["events"] == len(frames) - 1
        # JSON answers are the reply itself, whatever its length.
        answer = await http.post("/v1/conversations", json=conversation("a longer reply"))
        assert answer.json()["reply"] == "a longer reply"


async def test_a_bad_timeout_header_is_400_naming_it() -> None:
    async with gateway() as gw, gw.http() as http:
        response = await http.post(
            "/v1/conversations", json=conversation("hi"), headers={"x-request-timeout": "soon"}
        )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "X-Request-Timeout 'soon' is not a positive number of seconds"
    )


async def test_the_timeout_header_is_the_agent_calls_deadline() -> None:
    async with gateway(delay=0.5) as gw, gw.http() as http:
        started = time.monotonic()
        response = await http.post(
            "/v1/conversations", json=conversation("a b c d"), headers={"x-request-timeout": "0.8"}
        )
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "deadline_exceeded"
        assert time.monotonic() - started < 3


async def test_work_whose_deadline_passed_is_dropped_never_sent_to_an_agent() -> None:
    async with gateway() as gw:
        reader, writer = await asyncio.open_connection(*address(gw))
        body = json.dumps(conversation("late")).encode()
        try:
            writer.write(
                b"POST /v1/conversations HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
                b"x-request-timeout: 0.3\r\ncontent-length: %d\r\n\r\n" % len(body)
            )
            await writer.drain()
            await asyncio.sleep(0.8)  # the body comes after the deadline
            writer.write(body)
            answer = await asyncio.wait_for(reader.readuntil(b"}}"), 5)
        finally:
            writer.close()
        status, error = status_and_body(answer)
        assert status == 504
        assert "not sent to an agent" in error["error"]["message"]  # type: ignore[index]
        assert await calls_made(gw) == 0
        assert await metric(gw, "ecsgrpc_gateway_refusals_total", reason="deadline") == 1


async def test_sse_sends_comment_heartbeats_while_the_agent_is_silent() -> None:
    async with gateway(delay=0.8, sse_heartbeat_seconds=0.2) as gw, gw.http() as http:
        async with http.stream(
            "POST", "/v1/conversations", json=conversation("slow reply"), headers=SSE
        ) as response:
            lines = [line async for line in response.aiter_lines()]
    assert lines.count(": keep-alive") >= 4, lines
    assert lines[-2].startswith("data: ") and '"reply":"slow reply"' in lines[-2]


async def test_a_client_that_leaves_mid_sse_is_counted_as_499() -> None:
    async with gateway(delay=0.3) as gw:
        async with gw.http() as http:
            async with http.stream(
                "POST", "/v1/conversations", json=conversation("a b c d e f"), headers=SSE
            ) as response:
                lines = response.aiter_lines()
                while not (await anext(lines)).startswith("data: "):
                    pass
        labels = {"route": "/v1/conversations", "method": "POST", "status": "499"}
        deadline = time.monotonic() + 5
        while await metric(gw, "ecsgrpc_gateway_requests_total", **labels) != 1:
            assert time.monotonic() < deadline, "no 499 counted"
            await asyncio.sleep(0.05)


async def test_invalid_utf8_is_400_naming_the_byte() -> None:
    async with gateway() as gw, gw.http() as http:
        response = await http.post(
            "/v1/conversations",
            content=b'{"messages": [{"role": "user", "content": "caf\xe9"}]}',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "bad_json",
        "message": "the body is not valid UTF-8: byte 0xe9 at position 46",
        "status": 400,
        "problems": [],
    }


async def test_no_framework_wording_in_messages() -> None:
    async with gateway() as gw, gw.http() as http:
        response = await http.post("/v1/conversations", json=conversation("hi", role="system"))
    message = response.json()["error"]["message"]
    assert response.status_code == 422
    assert "Value error" not in message
    assert message == "invalid request: body: messages: at least one message must have role 'user'"


def _urllib_post(url: str, size: int) -> tuple[int, dict[str, object]]:
    body = b'{"messages": [{"role": "user", "content": "' + b"x" * size + b'"}]}'
    request = urllib.request.Request(
        url, data=body, headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def test_urllib_sending_5_mb_sees_413_not_a_reset() -> None:
    async with gateway() as gw:
        status, body = await asyncio.to_thread(
            _urllib_post, f"{gw.url}/v1/conversations", 5 * 1024 * 1024
        )
    assert status == 413
    assert body["error"]["code"] == "body_too_large"  # type: ignore[index]


async def test_docs_are_off_by_default_and_on_when_asked() -> None:
    async with gateway() as gw, gw.http() as http:
        assert (await http.get("/docs")).status_code == 404
        assert (await http.get("/openapi.json")).status_code == 200
    async with gateway(docs=True) as gw, gw.http() as http:
        assert (await http.get("/docs")).status_code == 200


async def test_the_favicon_is_served() -> None:
    async with gateway() as gw, gw.http() as http:
        response = await http.get("/favicon.svg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.text.startswith("<svg")


async def test_the_limiter_settings_reach_the_limiter() -> None:
    async with running_gateway(latency_tolerance=3.5, min_concurrency=6) as gw:
        config = gw.server.config.app.front.limiter.config
        assert (config.tolerance, config.min_limit) == (3.5, 6)
    async with running_gateway() as gw:  # the defaults (docs/gateway.md, docs/benchmarks.md)
        config = gw.server.config.app.front.limiter.config
        assert (config.tolerance, config.min_limit, config.max_limit) == (2.0, 12, 256)
