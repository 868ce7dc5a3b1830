"""gRPC status -> HTTP status, before and during a stream; disconnects cancel the agent call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
import httpx
import pytest

from ecsgrpc.endpoints import Endpoint
from ecsgrpc_apps.workflow import pb2
from ecsgrpc_apps.workflow.agent import WorkflowAgentServicer
from ecsgrpc_apps.workflow.settings import AgentSettings
from tests.gateway.support import SSE, conversation, endpoint, read_frames, running_gateway
from tests.support.agents import AgentProcess, wait_until
from tests.support.servers import running_server

pytestmark = pytest.mark.timeout(60)


class AbortingAgent(WorkflowAgentServicer):
    """Fails every conversation with ``code``, before any event or after START."""

    def __init__(self, code: grpc.StatusCode, *, after_start: bool = False) -> None:
        super().__init__(AgentSettings(instance_id="aborting"))
        self.code = code
        self.after_start = after_start

    async def ProcessConversation(  # type: ignore[override]
        self, request: pb2.ConversationRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb2.ConversationEvent]:
        if self.after_start:
            yield self._event(request, 0, pb2.ConversationEvent.KIND_START)
        await context.abort(self.code, f"failing with {self.code.name} on purpose")


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert (error["status"], error["code"]) == (status, code)
    return error


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.INTERNAL, 502),
        (grpc.StatusCode.PERMISSION_DENIED, 502),
        (grpc.StatusCode.UNIMPLEMENTED, 502),
    ],
)
async def test_each_grpc_status_maps_to_its_http_status(code: grpc.StatusCode, status: int) -> None:
    async with running_server("127.0.0.7", AbortingAgent(code)) as server:
        ep = Endpoint("127.0.0.7", server.port, {"instance_id": "aborting"})
        async with running_gateway([ep]) as gw, gw.http() as http:
            plain = await http.post("/v1/conversations", json=conversation("hi"))
            # Before any event, SSE clients get the same real HTTP status.
            streamed = await http.post("/v1/conversations", json=conversation("hi"), headers=SSE)
    error = _assert_error(plain, status, code.name.lower())
    assert f"failing with {code.name} on purpose" in str(error["message"])
    if code is grpc.StatusCode.UNAVAILABLE:
        # The failures ejected the only agent: the next request is a quick 503 too.
        assert streamed.status_code == 503
        assert streamed.json()["error"]["code"] in ("unavailable", "no_endpoint")
    else:
        _assert_error(streamed, status, code.name.lower())
    if status in (429, 503):
        assert plain.headers["retry-after"] == "1"


async def test_a_failure_after_output_is_an_sse_error_event_then_the_end() -> None:
    agent = AbortingAgent(grpc.StatusCode.INTERNAL, after_start=True)
    async with running_server("127.0.0.7", agent) as server:
        ep = Endpoint("127.0.0.7", server.port, {"instance_id": "aborting"})
        async with running_gateway([ep]) as gw, gw.http() as http:
            async with http.stream(
                "POST", "/v1/conversations", json=conversation("hi"), headers=SSE
            ) as response:
                assert response.status_code == 200
                frames = await read_frames(response)
            plain = await http.post("/v1/conversations", json=conversation("hi"))
    assert [f.event for f in frames] == ["message", "error"]
    assert frames[0].data["kind"] == "start"
    error = frames[1].data["error"]
    assert (error["status"], error["code"]) == (502, "internal")
    assert "failing with INTERNAL" in error["message"]
    _assert_error(plain, 502, "internal")


async def test_invalid_argument_from_the_agent_is_400_with_its_reason(
    agents: Callable[..., AgentProcess],
) -> None:
    # The gateway's own validation passes; the agent's stricter limit refuses it.
    agent = agents("127.0.0.2", env={"AGENT_MAX_CONTENT_CHARS": "10"})
    async with running_gateway([endpoint(agent)]) as gw, gw.http() as http:
        response = await http.post("/v1/conversations", json=conversation("x" * 20))
    error = _assert_error(response, 400, "invalid_argument")
    assert "messages[0].content has 20 characters; the limit is 10" in str(error["message"])


async def test_a_message_over_the_agents_receive_limit_is_429(
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents("127.0.0.2", env={"GRPC_MAX_RECEIVE_MESSAGE_BYTES": "2048"})
    async with running_gateway([endpoint(agent)]) as gw, gw.http() as http:
        assert await wait_until(lambda: gw.channel.ready_count == 1, 10)
        small = await http.post("/v1/conversations", json=conversation("fits"))
        big = await http.post("/v1/conversations", json=conversation("word " * 1000))
    assert small.status_code == 200
    _assert_error(big, 429, "resource_exhausted")


async def test_the_request_deadline_is_504_or_an_sse_error_event(
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents("127.0.0.2", args=("--event-delay", "0.5"))
    async with running_gateway([endpoint(agent)], request_timeout_seconds=0.8) as gw:
        async with gw.http() as http:
            started = asyncio.get_running_loop().time()
            plain = await http.post("/v1/conversations", json=conversation("a b c d e f"))
            took = asyncio.get_running_loop().time() - started
            async with http.stream(
                "POST", "/v1/conversations", json=conversation("a b c d e f"), headers=SSE
            ) as response:
                assert response.status_code == 200  # START arrived before the deadline
                frames = await read_frames(response)
    _assert_error(plain, 504, "deadline_exceeded")
    assert 0.7 < took < 2.0, took
    assert frames[0].data["kind"] == "start"
    assert frames[-1].event == "error"
    assert frames[-1].data["error"]["status"] == 504
    assert frames[-1].data["error"]["code"] == "deadline_exceeded"


async def test_no_ready_agent_is_503_after_the_endpoint_wait() -> None:
    # One endpoint where nothing listens, and none at all: both 503, quickly.
    for endpoints in ([], [Endpoint("127.0.0.9", 1, {})]):
        async with running_gateway(endpoints, endpoint_wait_seconds=0.3) as gw, gw.http() as http:
            started = asyncio.get_running_loop().time()
            response = await http.post("/v1/conversations", json=conversation("hi"))
            took = asyncio.get_running_loop().time() - started
        error = _assert_error(response, 503, "no_endpoint")
        assert "no Workflow Agent is available" in str(error["message"])
        assert response.headers["retry-after"] == "1"
        assert took < 2.0, took


async def test_the_503_says_why_discovery_has_no_agent() -> None:
    # The real cause (here: no AWS region) reaches the HTTP client, not only a log line.
    async with running_gateway([], endpoint_wait_seconds=0.3) as gw, gw.http() as http:
        gw.resolver.fail("cloudmap: discover_instances: NoRegionError: You must specify a region.")
        response = await http.post("/v1/conversations", json=conversation("hi"))
    error = _assert_error(response, 503, "no_endpoint")
    assert "discovery failed" in str(error["message"])
    assert "You must specify a region" in str(error["message"])


async def test_a_client_that_leaves_an_sse_stream_cancels_the_agent_call(
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents("127.0.0.2", args=("--event-delay", "0.1"))
    words = " ".join(f"w{i}" for i in range(50))
    async with running_gateway([endpoint(agent)]) as gw:
        async with gw.http() as http:
            async with http.stream(
                "POST", "/v1/conversations", json=conversation(words, "leave-sse"), headers=SSE
            ) as response:
                frames = await read_frames(response, limit=4)
        assert [f.data["sequence"] for f in frames] == [0, 1, 2, 3]
        assert await wait_until(
            lambda: "leave-sse cancelled by the client" in agent.log_text(), 5
        ), agent.log_text()
        assert await wait_until(lambda: gw.channel.endpoints()[0].in_flight == 0, 5)
    log = agent.log_text()
    deltas = int(log.split("leave-sse cancelled by the client after ")[1].split(" ")[0])
    assert deltas < 10  # it stopped long before the 50 words


async def test_a_client_that_leaves_a_json_request_cancels_the_agent_call(
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents("127.0.0.2", args=("--event-delay", "0.1"))
    words = " ".join(f"w{i}" for i in range(50))
    async with running_gateway([endpoint(agent)]) as gw:
        async with gw.http() as http:
            request = asyncio.create_task(
                http.post("/v1/conversations", json=conversation(words, "leave-json"))
            )
            assert await wait_until(lambda: gw.channel.endpoints()[0].in_flight == 1, 5)
            await asyncio.sleep(0.3)
            request.cancel()  # httpx closes the connection
            with pytest.raises(asyncio.CancelledError):
                await request
        assert await wait_until(
            lambda: "leave-json cancelled by the client" in agent.log_text(), 5
        ), agent.log_text()
        assert await wait_until(lambda: gw.channel.endpoints()[0].in_flight == 0, 5)
        text = await _metrics(gw.url)
    assert (
        'ecsgrpc_gateway_requests_total{method="POST",route="/v1/conversations",status="499"} 1.0'
        in text
    )


async def _metrics(url: str) -> str:
    async with httpx.AsyncClient(base_url=url) as http:
        return (await http.get("/metrics")).text
