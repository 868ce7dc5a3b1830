"""ecsgrpc: gRPC discovery, balancing, health and draining for AWS ECS.

The public API is what ``__all__`` lists; everything else is internal::

    async with ecsgrpc.connect("cloudmap://workflow.local/workflow-agent") as channel:
        stub = MyServiceStub(channel)          # any generated stub
        reply = await stub.Method(request, timeout=2)
"""

from ecsgrpc.balancing.channel import BalancedChannel, connect
from ecsgrpc.balancing.outlier import OutlierConfig
from ecsgrpc.balancing.retry import RetryPolicy
from ecsgrpc.balancing.status import EndpointStatus
from ecsgrpc.discovery import resolve
from ecsgrpc.endpoints import Endpoint, EndpointSet
from ecsgrpc.errors import (
    ConfigError,
    EcsGrpcError,
    NoEndpointAvailable,
    ResolutionError,
    StreamInterrupted,
)
from ecsgrpc.server import Server, ServerState, ServiceSpec, serve
from ecsgrpc.targets import parse_target

__version__ = "0.1.0"

__all__ = [
    "BalancedChannel",
    "ConfigError",
    "EcsGrpcError",
    "Endpoint",
    "EndpointSet",
    "EndpointStatus",
    "NoEndpointAvailable",
    "OutlierConfig",
    "ResolutionError",
    "RetryPolicy",
    "Server",
    "ServerState",
    "ServiceSpec",
    "StreamInterrupted",
    "connect",
    "parse_target",
    "resolve",
    "serve",
]
