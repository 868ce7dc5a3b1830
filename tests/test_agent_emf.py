"""The agent's in-flight conversations as CloudWatch embedded metric format lines.

The autoscaling policy of infra/terraform scales agents on this metric, so
the lines are checked against the EMF specification's rules (a root ``_aws``
member with an integer ``Timestamp`` in ms and ``CloudWatchMetrics``; each
dimension set names root members whose values are strings; each metric
names a root member whose value is a number) and against a real agent's load.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from ecsgrpc.config import load
from ecsgrpc.errors import ConfigError
from ecsgrpc_apps.workflow import emf, pb2, pb2_grpc
from ecsgrpc_apps.workflow.settings import AgentSettings
from tests.support.agents import AgentProcess, wait_until

pytestmark = pytest.mark.timeout(60)

DIMENSIONS = "ClusterName=ecsgrpc-example,ServiceName=workflow-agent"


def check_emf(record: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, float]]:
    """Validate one record by the EMF specification; return namespace, dimensions, values."""
    meta = record["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_500_000_000_000
    (directive,) = meta["CloudWatchMetrics"]
    namespace = directive["Namespace"]
    assert isinstance(namespace, str) and 1 <= len(namespace) <= 255
    dims: dict[str, str] = {}
    for dimension_set in directive["Dimensions"]:
        assert 1 <= len(dimension_set) <= 30
        for name in dimension_set:
            assert isinstance(record[name], str), name
            dims[name] = record[name]
    values = {}
    for metric in directive["Metrics"]:
        assert metric["Unit"] in {"Count", "None"}
        value = record[metric["Name"]]
        assert isinstance(value, int | float) and not isinstance(value, bool)
        values[metric["Name"]] = value
    return namespace, dims, values


def metric_lines(agent: AgentProcess) -> list[dict[str, Any]]:
    records = []
    for line in agent.log_text().splitlines():
        if line.startswith('{"_aws"'):
            records.append(json.loads(line))
    return records


def test_emf_line_follows_the_specification() -> None:
    line = emf.emf_line(
        "ecsgrpc", emf.parse_dimensions(DIMENSIONS), 3, timestamp_ms=1_700_000_000_000
    )
    namespace, dims, values = check_emf(json.loads(line))
    assert namespace == "ecsgrpc"
    assert dims == {"ClusterName": "ecsgrpc-example", "ServiceName": "workflow-agent"}
    assert values == {"ConversationsInFlight": 3}
    assert "\n" not in line  # one log event per record


@pytest.mark.parametrize("bad", ["ClusterName", "=x", "a=", "a=1,b"])
def test_bad_dimensions_are_refused_by_name(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_METRICS_DIMENSIONS", bad)
    with pytest.raises(ConfigError, match="AGENT_METRICS_DIMENSIONS"):
        load(AgentSettings)


async def test_a_running_agent_reports_its_conversations_in_flight(
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents(
        "127.0.0.6",
        args=("--event-delay", "0.3"),
        env={
            "AGENT_METRICS_NAMESPACE": "ecsgrpc",
            "AGENT_METRICS_DIMENSIONS": DIMENSIONS,
            "AGENT_METRICS_INTERVAL_SECONDS": "1",
        },
    )
    assert await wait_until(lambda: len(metric_lines(agent)) >= 1, 10)
    assert check_emf(metric_lines(agent)[0])[2] == {"ConversationsInFlight": 0}
    words = " ".join(f"w{i}" for i in range(60))
    async with grpc.aio.insecure_channel(agent.address) as channel:
        stub = pb2_grpc.WorkflowAgentStub(channel)
        request = pb2.ConversationRequest(
            conversation_id="emf",
            messages=[pb2.Message(role="user", content=words)],
        )
        calls = [stub.ProcessConversation(request, timeout=30) for _ in range(2)]
        for call in calls:
            await call.read()  # START: both conversations are in flight
        seen = len(metric_lines(agent))
        assert await wait_until(
            lambda: any(
                check_emf(r)[2]["ConversationsInFlight"] == 2 for r in metric_lines(agent)[seen:]
            ),
            10,
        )
        for call in calls:
            call.cancel()
    later = time.monotonic()
    assert await wait_until(
        lambda: check_emf(metric_lines(agent)[-1])[2]["ConversationsInFlight"] == 0, 10
    ), f"still in flight {time.monotonic() - later:.1f} s after the cancels"
    namespace, dims, _ = check_emf(metric_lines(agent)[-1])
    assert namespace == "ecsgrpc" and dims["ServiceName"] == "workflow-agent"


def test_no_metric_lines_without_a_namespace(agents: Callable[..., AgentProcess]) -> None:
    agent = agents("127.0.0.6", env={"AGENT_METRICS_INTERVAL_SECONDS": "1"})
    time.sleep(2.5)
    assert metric_lines(agent) == []
