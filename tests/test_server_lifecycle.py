"""SIGTERM drain of a real agent process, and the lifecycle state machine."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecsgrpc.server import ServerState, can_transition
from ecsgrpc_apps.workflow import pb2, pb2_grpc
from tests.support.agents import AgentProcess, wait_until

pytestmark = pytest.mark.timeout(60)
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVING = health_pb2.HealthCheckResponse.SERVING


def _request(words: int, cid: str) -> pb2.ConversationRequest:
    text = " ".join(f"w{i}" for i in range(words))
    return pb2.ConversationRequest(
        conversation_id=cid, messages=[pb2.Message(role="user", content=text)]
    )


async def _read_rest(call: grpc.aio.UnaryStreamCall) -> list[pb2.ConversationEvent]:
    """Read a call to its end with read() (iteration cannot follow read())."""
    events = []
    while (event := await call.read()) is not grpc.aio.EOF:
        events.append(event)
    return events


def test_state_machine_allows_only_the_documented_transitions() -> None:
    allowed = {(a, b) for a in ServerState for b in ServerState if can_transition(a, b)}
    assert allowed == {
        (ServerState.CREATED, ServerState.SERVING),
        (ServerState.CREATED, ServerState.STOPPED),
        (ServerState.SERVING, ServerState.DRAINING),
        (ServerState.SERVING, ServerState.STOPPING),
        (ServerState.DRAINING, ServerState.STOPPING),
        (ServerState.STOPPING, ServerState.STOPPED),
    }


async def test_sigterm_flips_health_within_100ms(agents: Callable[..., AgentProcess]) -> None:
    agent = agents("127.0.0.2", args=("--drain-seconds", "2", "--grace-seconds", "2"))
    async with grpc.aio.insecure_channel(agent.address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=20
        )
        first = await watch.read()
        assert first.status == SERVING
        sent = time.monotonic()
        agent.signal(signal.SIGTERM)
        second = await watch.read()
        elapsed = time.monotonic() - sent
        watch.cancel()
    assert second.status == NOT_SERVING
    assert elapsed < 0.1, f"NOT_SERVING took {elapsed * 1000:.0f} ms"
    assert agent.wait(timeout=10) == 0


async def test_drain_finishes_started_streams_refuses_late_calls_and_exits_0(
    agents: Callable[..., AgentProcess],
) -> None:
    drain, grace = 1.0, 5.0
    agent = agents(
        "127.0.0.3",
        args=("--drain-seconds", str(drain), "--grace-seconds", str(grace), "--event-delay", "0.1"),
    )
    async with grpc.aio.insecure_channel(agent.address) as channel:
        stub = pb2_grpc.WorkflowAgentStub(channel)
        # 25 events at 0.1 s: runs ~2.6 s, past the drain delay, inside the grace.
        long_call = stub.ProcessConversation(_request(24, "long"), timeout=20)
        first = await long_call.read()
        assert first.sequence == 0
        sent = time.monotonic()
        agent.signal(signal.SIGTERM)
        # During the drain delay new calls are still served.
        during = [e async for e in stub.ProcessConversation(_request(2, "during"), timeout=5)]
        assert len(during) == 4
        rest = await _read_rest(long_call)
        assert [e.sequence for e in [first, *rest]] == list(range(26))
        await asyncio.sleep(max(0.0, drain + 0.2 - (time.monotonic() - sent)))
        if agent.proc.poll() is None:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ProcessConversation(_request(2, "late"), timeout=3).read()
            assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    code = await asyncio.to_thread(agent.wait, 15)
    total = time.monotonic() - sent
    assert code == 0
    assert total < drain + grace + 1.5
    assert "late" not in agent.log_text()


async def test_call_after_drain_delay_is_refused(agents: Callable[..., AgentProcess]) -> None:
    agent = agents(
        "127.0.0.4",
        args=("--drain-seconds", "0.5", "--grace-seconds", "10", "--event-delay", "0.1"),
    )
    async with grpc.aio.insecure_channel(agent.address) as channel:
        stub = pb2_grpc.WorkflowAgentStub(channel)
        # Keeps the server in STOPPING (in-flight) for ~4 s after the drain.
        holder = stub.ProcessConversation(_request(40, "holder"), timeout=20)
        await holder.read()
        agent.signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        assert agent.proc.poll() is None
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ProcessConversation(_request(2, "late"), timeout=3).read()
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        events = await _read_rest(holder)
        assert events[-1].kind == pb2.ConversationEvent.Kind.KIND_COMPLETE
    assert await asyncio.to_thread(agent.wait, 15) == 0


async def test_grace_cancels_what_is_left_and_still_exits_0(
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents(
        "127.0.0.5",
        args=("--drain-seconds", "0.2", "--grace-seconds", "0.5", "--event-delay", "0.5"),
    )
    async with grpc.aio.insecure_channel(agent.address) as channel:
        call = pb2_grpc.WorkflowAgentStub(channel).ProcessConversation(
            _request(100, "endless"), timeout=30
        )
        await call.read()
        sent = time.monotonic()
        agent.signal(signal.SIGTERM)
        with pytest.raises(grpc.aio.AioRpcError):
            await _read_rest(call)
    assert await asyncio.to_thread(agent.wait, 10) == 0
    assert time.monotonic() - sent < 0.2 + 0.5 + 1.5


async def test_second_signal_stops_at_once(agents: Callable[..., AgentProcess]) -> None:
    agent = agents("127.0.0.6", args=("--drain-seconds", "20", "--grace-seconds", "20"))
    agent.signal(signal.SIGTERM)
    assert await wait_until(lambda: "draining" in agent.log_text(), 5)
    sent = time.monotonic()
    agent.signal(signal.SIGTERM)
    code = await asyncio.to_thread(agent.wait, 10)
    assert time.monotonic() - sent < 3
    assert code == 1
