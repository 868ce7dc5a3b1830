"""The reference system from the seed: the Workflow Agent and its clients."""

from ecsgrpc.workflow._proto import workflow_agent_pb2 as pb2
from ecsgrpc.workflow._proto import workflow_agent_pb2_grpc as pb2_grpc

SERVICE_NAME = "workflow.v1.WorkflowAgent"

__all__ = ["SERVICE_NAME", "pb2", "pb2_grpc"]
