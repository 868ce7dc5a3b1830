"""gRFC A6's per-attempt receive timeout for idempotent methods, against real agents:
a call that lands on a frozen agent moves to another one after the attempt's
timeout instead of waiting out its whole deadline; a streaming response is
never cut by it. Silence detection is off here, to see this mechanism alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from ecsgrpc.balancing.channel import BalancedChannel
from ecsgrpc.balancing.retry import RetryPolicy
from ecsgrpc.balancing.stall import StallConfig
from ecsgrpc.endpoints import Endpoint
from ecsgrpc.errors import ConfigError
from ecsgrpc.testing import ManualResolver
from ecsgrpc_apps.workflow import pb2_grpc
from tests.support.agents import AgentProcess
from tests.support.load import stream_call, unary_call

pytestmark = pytest.mark.timeout(90)

DESCRIBE = "/workflow.v1.WorkflowAgent/DescribeAgent"
CONVERSE = "/workflow.v1.WorkflowAgent/ProcessConversation"


def _channel(
    procs: list[AgentProcess], idempotent: list[str], registry: CollectorRegistry
) -> BalancedChannel:
    return BalancedChannel(
        ManualResolver(Endpoint(p.host, p.port, {"instance_id": p.instance_id}) for p in procs),
        target="attempts",
        policy="round_robin",
        registry=registry,
        detect_ecs_zone=False,
        idempotent_methods=idempotent,
        retry=RetryPolicy(per_attempt_timeout=0.3),
        stall=StallConfig(enabled=False),
    )


@contextlib.contextmanager
def _frozen(agent: AgentProcess) -> Iterator[None]:
    os.kill(agent.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(agent.pid, signal.SIGCONT)


@pytest.mark.parametrize("idempotent", [True, False])
async def test_an_idempotent_call_leaves_a_frozen_agent_after_its_attempt_timeout(
    agents: Callable[..., AgentProcess], idempotent: bool
) -> None:
    frozen, live = agents("127.0.12.5"), agents("127.0.12.6")
    registry = CollectorRegistry()
    marked = [DESCRIBE] if idempotent else []
    async with _channel([frozen, live], marked, registry) as ch:
        await ch.channel_ready(timeout=10, min_ready=2)
        stub = pb2_grpc.WorkflowAgentStub(ch)
        with _frozen(frozen):
            outcomes = []
            for _ in range(4):  # round robin: some start on the frozen agent
                started = time.monotonic()
                outcomes.append((await unary_call(stub, timeout=1.5), time.monotonic() - started))
    retries = registry.get_sample_value("ecsgrpc_client_retries_total", {"method": DESCRIBE})
    if idempotent:
        assert all(o.error is None and o.served_by == live.instance_id for o, _ in outcomes)
        assert max(took for _, took in outcomes) < 1.2  # 0.3 s attempt + one retry, not 1.5 s
        # Each call that started on the frozen agent took its 0.3 s there, then moved.
        assert retries == sum(1 for _, took in outcomes if took >= 0.3) >= 1
    else:  # the control: not marked, they alternate, and those on the frozen one time out
        failed = [o for o, took in outcomes if o.error == "DEADLINE_EXCEEDED" and took >= 1.4]
        assert len(failed) == 2
        assert not retries


async def test_a_streaming_response_is_never_cut_by_the_attempt_timeout(
    agents: Callable[..., AgentProcess],
) -> None:
    slow = [agents(h, args=("--event-delay", "0.1")) for h in ("127.0.12.7", "127.0.12.8")]
    registry = CollectorRegistry()
    async with _channel(slow, [CONVERSE, DESCRIBE], registry) as ch:
        await ch.channel_ready(timeout=10, min_ready=2)
        stub = pb2_grpc.WorkflowAgentStub(ch)
        outcomes = await asyncio.gather(*(stream_call(stub, 5, f"s{i}") for i in range(4)))
    # 7 events 0.1 s apart: 0.7 s per stream, past the 0.3 s attempt timeout.
    assert all(o.error is None and o.sequences == list(range(7)) for o in outcomes)
    assert not registry.get_sample_value("ecsgrpc_client_retries_total", {"method": CONVERSE})


def test_a_per_attempt_timeout_must_be_positive() -> None:
    with pytest.raises(
        ConfigError, match=r"per_attempt_timeout must be > 0 seconds \(or None\), got 0"
    ):
        RetryPolicy(per_attempt_timeout=0)
