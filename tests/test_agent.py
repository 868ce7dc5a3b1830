"""The reference agent, run as a real process on a loopback address."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ecsgrpc_apps.scheduling import thread_policies
from ecsgrpc_apps.workflow import SERVICE_NAME, pb2, pb2_grpc
from tests.support.agents import AgentProcess, wait_until

Kind = pb2.ConversationEvent.Kind
pytestmark = pytest.mark.timeout(60)


def _request(content: str, cid: str = "c-1", **kw: object) -> pb2.ConversationRequest:
    return pb2.ConversationRequest(
        conversation_id=cid,
        messages=[
            pb2.Message(role="system", content="be brief"),
            pb2.Message(role="user", content="first question"),
            pb2.Message(role="assistant", content="an answer"),
            pb2.Message(role="user", content=content),
        ],
        metadata={"tenant": "t1"},
        **kw,  # type: ignore[arg-type]
    )


async def _collect(address: str, request: pb2.ConversationRequest) -> list[pb2.ConversationEvent]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb2_grpc.WorkflowAgentStub(channel)
        return [event async for event in stub.ProcessConversation(request, timeout=10)]


async def test_reply_is_exact_and_sequences_contiguous(
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents("127.0.0.2", instance_id="agent-a")
    events = await _collect(agent.address, _request("hello   brave new\tworld"))
    assert [e.kind for e in events] == [Kind.KIND_START] + [Kind.KIND_DELTA] * 4 + [
        Kind.KIND_COMPLETE
    ]
    assert [e.sequence for e in events] == list(range(6))
    assert "".join(e.text for e in events) == "hello brave new world"
    assert [e.text for e in events[1:5]] == ["hello", " brave", " new", " world"]
    assert {e.served_by for e in events} == {"agent-a"}
    assert {e.conversation_id for e in events} == {"c-1"}
    assert events[-1].delta_count == 4


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (pb2.ConversationRequest(conversation_id="x"), "no messages"),
        (
            pb2.ConversationRequest(
                conversation_id="x", messages=[pb2.Message(role="system", content="hi")]
            ),
            "no message with role 'user'",
        ),
        (
            pb2.ConversationRequest(
                conversation_id="x", messages=[pb2.Message(role="user", content="y" * 101)]
            ),
            "messages[0].content has 101 characters; the limit is 100",
        ),
    ],
)
async def test_invalid_requests_get_invalid_argument(
    agents: Callable[..., AgentProcess], request_: pb2.ConversationRequest, expected: str
) -> None:
    agent = agents("127.0.0.3", env={"AGENT_MAX_CONTENT_CHARS": "100"})
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _collect(agent.address, request_)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert expected in (info.value.details() or "")


async def test_oversized_request_is_refused_by_the_receive_limit(
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents("127.0.0.4", env={"GRPC_MAX_RECEIVE_MESSAGE_BYTES": "65536"})
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _collect(agent.address, _request("z" * 70_000))
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    # The agent is still fine afterwards.
    events = await _collect(agent.address, _request("still here"))
    assert "".join(e.text for e in events) == "still here"


async def test_client_cancel_stops_the_work_on_the_server(
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents("127.0.0.5", args=("--event-delay", "0.2"))
    words = " ".join(f"w{i}" for i in range(50))
    async with grpc.aio.insecure_channel(agent.address) as channel:
        call = pb2_grpc.WorkflowAgentStub(channel).ProcessConversation(
            _request(words, cid="cancel-me"), timeout=30
        )
        received = 0
        async for _event in call:
            received += 1
            if received == 3:
                call.cancel()
                break
    assert await wait_until(lambda: "cancel-me cancelled by the client" in agent.log_text(), 5)
    log = agent.log_text()
    # It stopped long before finishing the 50 words.
    assert "after 2 of 50 deltas" in log or "after 3 of 50 deltas" in log


async def test_a_cancel_that_finds_the_agent_sending_is_still_logged(
    agents: Callable[..., AgentProcess],
) -> None:
    # A reader that stops reading: the agent's send waits on flow control, so the
    # cancel reaches grpc.aio while it sends an event (the generator is then closed
    # at its yield, not cancelled where it waits).
    agent = agents("127.0.0.5", env={"AGENT_MAX_CONTENT_CHARS": "3000000"})
    words = " ".join(f"w{i}" for i in range(300_000))
    options = [("grpc.http2.bdp_probe", 0)]
    async with grpc.aio.insecure_channel(agent.address, options=options) as channel:
        call = pb2_grpc.WorkflowAgentStub(channel).ProcessConversation(
            _request(words, cid="stalled-reader"), timeout=30
        )
        first = await call.read()
        assert first.kind == Kind.KIND_START
        await asyncio.sleep(1.0)  # the agent fills the window and waits to send
        call.cancel()
    assert await wait_until(
        lambda: "stalled-reader cancelled by the client" in agent.log_text(), 5
    ), agent.log_text()
    log = agent.log_text()
    sent = int(log.split("stalled-reader cancelled by the client after ")[1].split(" ")[0])
    assert 0 < sent < 300_000


async def test_standard_health_and_reflection_clients_see_the_services(
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents("127.0.0.6")
    async with grpc.aio.insecure_channel(agent.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name async for r in responses for s in r.list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names


async def test_many_concurrent_conversations_each_get_their_own_stream(
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents("127.0.0.7")
    results = await asyncio.gather(
        *(_collect(agent.address, _request(f"n{i} m{i}", cid=f"c{i}")) for i in range(40))
    )
    for i, events in enumerate(results):
        assert "".join(e.text for e in events) == f"n{i} m{i}"
        assert {e.conversation_id for e in events} == {f"c{i}"}


@pytest.mark.parametrize(("policy", "expected"), [(None, "SCHED_BATCH"), ("normal", "SCHED_OTHER")])
async def test_every_agent_thread_runs_under_the_cpu_policy_asked_for(
    agents: Callable[..., AgentProcess], policy: str | None, expected: str
) -> None:
    # Batch by default, as the gateway (docs/gateway.md, "CPU scheduling"): gRPC's
    # server threads, started after the policy was set, inherit it.
    agent = agents("127.0.0.3", env={"AGENT_CPU_POLICY": policy} if policy else {})
    events = await _collect(agent.address, _request("one two"))
    assert "".join(e.text for e in events) == "one two"
    policies = thread_policies(agent.proc.pid)
    assert len(policies) >= 3, policies  # the loop's thread and gRPC's own, at least
    assert set(policies.values()) == {getattr(os, expected)}, policies
    assert f"cpu policy: {policy or 'batch'}" in agent.log_text()


def test_an_unknown_cpu_policy_stops_the_agent_naming_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ecsgrpc", "agent", "--host", "127.0.0.3", "--port", "0"],
        env={**os.environ, "AGENT_CPU_POLICY": "fifo"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert "AGENT_CPU_POLICY" in result.stderr
    assert "fifo" in result.stderr
    assert "Traceback" not in result.stderr
