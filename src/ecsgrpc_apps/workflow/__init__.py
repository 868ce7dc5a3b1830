"""The reference system from the seed: the Workflow Agent and its clients."""

from typing import Any

from ecsgrpc_apps.workflow._proto import workflow_agent_pb2 as pb2
from ecsgrpc_apps.workflow._proto import workflow_agent_pb2_grpc as pb2_grpc

SERVICE_NAME = "workflow.v1.WorkflowAgent"

__all__ = ["SERVICE_NAME", "pb2", "pb2_grpc", "workflow_stub"]


def workflow_stub(channel: Any) -> Any:
    """A ``WorkflowAgentStub`` on any channel (grpc.aio or BalancedChannel)."""
    return pb2_grpc.WorkflowAgentStub(channel)  # type: ignore[no-untyped-call]
