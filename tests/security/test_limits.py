"""Server-side limits: each refusal is a clear gRPC status and the server keeps serving."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecsgrpc.config import ServerSettings
from ecsgrpc.errors import ConfigError
from ecsgrpc.server import server_options
from ecsgrpc.server.deadline import DeadlineCapInterceptor
from ecsgrpc_apps.workflow import pb2, pb2_grpc
from ecsgrpc_apps.workflow.agent import WorkflowAgentServicer
from ecsgrpc_apps.workflow.client import build_request
from ecsgrpc_apps.workflow.settings import AgentSettings
from tests.support.secure import secure_server
from tests.support.servers import echo_service

pytestmark = pytest.mark.timeout(60)


class SlowDescribe(WorkflowAgentServicer):
    """DescribeAgent takes ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(AgentSettings(instance_id="slow"))
        self.seconds = seconds

    async def DescribeAgent(self, request, context):  # type: ignore[no-untyped-def]
        await asyncio.sleep(self.seconds)
        return pb2.AgentInfo(instance_id=self.instance_id)


async def _events(
    channel: grpc.aio.Channel, words: int, timeout: float | None = 10
) -> list[pb2.ConversationEvent]:
    text = " ".join(f"w{i}" for i in range(words))
    call = pb2_grpc.WorkflowAgentStub(channel).ProcessConversation(
        build_request("c", [("user", text)]), timeout=timeout
    )
    return [e async for e in call]


def test_defaults_are_bounded() -> None:
    settings = ServerSettings()
    options = dict(server_options(settings))
    assert options["grpc.max_receive_message_length"] == 4 * 1024 * 1024
    assert options["grpc.max_send_message_length"] == 4 * 1024 * 1024
    assert options["grpc.max_concurrent_streams"] == 1000
    assert settings.max_call_seconds == 300
    assert AgentSettings().max_messages == 256
    assert AgentSettings().max_content_chars == 16_384


async def test_a_response_over_the_send_limit_is_resource_exhausted() -> None:
    async with secure_server("127.0.0.2", echo_service(), max_send_message_bytes=2048) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            echo = channel.stream_stream("/test.Echo/Echo")
            small = [r async for r in echo(iter([b"x" * 100]), timeout=5)]
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in echo(iter([b"x" * 3000]), timeout=5):
                    pass
            again = [r async for r in echo(iter([b"y" * 100]), timeout=5)]
    assert small == [b"x" * 100]
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (caught.value.details() or "")
    assert again == [b"y" * 100]


async def test_a_request_over_the_receive_limit_is_resource_exhausted() -> None:
    async with secure_server("127.0.0.2", max_receive_message_bytes=4096) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _events(channel, 2000)  # ~10 kB of words
            assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert len(await _events(channel, 3)) == 5


async def test_streams_beyond_the_per_connection_limit_wait_and_are_not_lost() -> None:
    """max_concurrent_streams=1: a second call on the same connection waits for a
    slot; with a short deadline it ends DEADLINE_EXCEEDED, never a crash."""
    agent = AgentSettings(instance_id="a", event_delay_seconds=0.2)
    async with secure_server("127.0.0.2", agent=agent, max_concurrent_streams=1) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            await channel.channel_ready()
            first = asyncio.create_task(_events(channel, 5))  # ~1.2 s
            await asyncio.sleep(0.3)
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await pb2_grpc.WorkflowAgentStub(channel).DescribeAgent(
                    pb2.DescribeAgentRequest(), timeout=0.3
                )
            waited = time.monotonic() - started
            assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            assert waited >= 0.25
            assert len(await first) == 7
            # Once the stream ended, the slot is free again.
            info = await pb2_grpc.WorkflowAgentStub(channel).DescribeAgent(
                pb2.DescribeAgentRequest(), timeout=5
            )
    assert info.instance_id == "a"


async def test_a_stream_without_deadline_is_cut_at_the_server_cap() -> None:
    agent = AgentSettings(instance_id="a", event_delay_seconds=0.2)
    async with secure_server("127.0.0.2", agent=agent, max_call_seconds=0.5) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            got: list[pb2.ConversationEvent] = []
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                call = pb2_grpc.WorkflowAgentStub(channel).ProcessConversation(
                    build_request("c", [("user", " ".join(["w"] * 20))])  # no deadline
                )
                async for event in call:
                    got.append(event)
            elapsed = time.monotonic() - started
            # A short call is unaffected; the server keeps serving.
            quick = await _events(channel, 1, timeout=5)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert "GRPC_MAX_CALL_SECONDS" in (caught.value.details() or "")
    assert 0.4 < elapsed < 2.0
    assert 1 <= len(got) < 22
    assert len(quick) == 3 and server.security.deadline_cap.cut == 1


async def test_a_unary_call_with_a_longer_deadline_is_cut_at_the_cap() -> None:
    async with secure_server("127.0.0.2", servicer=SlowDescribe(3), max_call_seconds=0.3) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb2_grpc.WorkflowAgentStub(channel)
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as capped:
                await stub.DescribeAgent(pb2.DescribeAgentRequest(), timeout=30)
            elapsed = time.monotonic() - started
            with pytest.raises(grpc.aio.AioRpcError) as own:  # the client's shorter deadline
                await stub.DescribeAgent(pb2.DescribeAgentRequest(), timeout=0.1)
    assert capped.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert "server's limit of 0.3s" in (capped.value.details() or "")
    assert elapsed < 1.5
    assert own.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert "GRPC_MAX_CALL_SECONDS" not in (own.value.details() or "")


async def test_health_watches_outlive_the_call_cap() -> None:
    async with secure_server("127.0.0.2", max_call_seconds=0.2) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            first = await watch.read()
            await asyncio.sleep(0.6)
            await server.set_serving(False)
            second = await watch.read()
            watch.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.parametrize(
    ("agent", "request_", "needle"),
    [
        (
            AgentSettings(max_messages=3),
            build_request("c", [("user", "x")] * 4),
            "conversation has 4 messages; the limit is 3",
        ),
        (
            AgentSettings(max_content_chars=10),
            build_request("c", [("user", "x" * 11)]),
            "messages[0].content has 11 characters; the limit is 10",
        ),
    ],
)
async def test_agent_conversation_limits_are_invalid_argument(
    agent: AgentSettings, request_: pb2.ConversationRequest, needle: str
) -> None:
    async with secure_server("127.0.0.2", agent=agent) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in pb2_grpc.WorkflowAgentStub(channel).ProcessConversation(
                    request_, timeout=5
                ):
                    pass
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert needle in (caught.value.details() or "")


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("GRPC_MAX_CONCURRENT_STREAMS", "0"),
        ("GRPC_MAX_CALL_SECONDS", "0"),
        ("GRPC_MAX_CALL_SECONDS", "forever"),
        ("GRPC_MAX_RECEIVE_MESSAGE_BYTES", "10"),
    ],
)
def test_bad_limits_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    from ecsgrpc.config import load

    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as caught:
        load(ServerSettings)
    assert f"{env}={value!r}" in str(caught.value)


def test_deadline_cap_refuses_a_non_positive_cap() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        DeadlineCapInterceptor(0)
