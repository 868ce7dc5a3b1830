"""ecsgrpc: gRPC discovery, balancing, health and draining for AWS ECS.

The public API is what ``__all__`` lists; everything else is internal::

    async with ecsgrpc.connect("cloudmap://workflow.local/workflow-agent") as channel:
        stub = MyServiceStub(channel)          # any generated stub
        reply = await stub.Method(request, timeout=2)
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecsgrpc.balancing.channel import BalancedChannel, connect
    from ecsgrpc.balancing.outlier import OutlierConfig
    from ecsgrpc.balancing.retry import RetryPolicy
    from ecsgrpc.balancing.stall import StallConfig
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

# Exported name -> module. Loaded on first use (PEP 562), so a small command
# such as `ecsgrpc probe` does not import aiobotocore, FastAPI or grpc's aio stack.
_EXPORTS = {
    "BalancedChannel": "ecsgrpc.balancing.channel",
    "connect": "ecsgrpc.balancing.channel",
    "OutlierConfig": "ecsgrpc.balancing.outlier",
    "RetryPolicy": "ecsgrpc.balancing.retry",
    "StallConfig": "ecsgrpc.balancing.stall",
    "EndpointStatus": "ecsgrpc.balancing.status",
    "resolve": "ecsgrpc.discovery",
    "Endpoint": "ecsgrpc.endpoints",
    "EndpointSet": "ecsgrpc.endpoints",
    "ConfigError": "ecsgrpc.errors",
    "EcsGrpcError": "ecsgrpc.errors",
    "NoEndpointAvailable": "ecsgrpc.errors",
    "ResolutionError": "ecsgrpc.errors",
    "StreamInterrupted": "ecsgrpc.errors",
    "Server": "ecsgrpc.server",
    "ServerState": "ecsgrpc.server",
    "ServiceSpec": "ecsgrpc.server",
    "serve": "ecsgrpc.server",
    "parse_target": "ecsgrpc.targets",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ecsgrpc' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


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
    "StallConfig",
    "StreamInterrupted",
    "connect",
    "parse_target",
    "resolve",
    "serve",
]
