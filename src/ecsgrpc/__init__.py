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
    from ecsgrpc.balancing.picker import Picker, register_policy
    from ecsgrpc.balancing.retry import RetryPolicy
    from ecsgrpc.balancing.stall import StallConfig
    from ecsgrpc.balancing.status import EndpointStatus
    from ecsgrpc.config import ServerSettings
    from ecsgrpc.discovery import resolve
    from ecsgrpc.endpoints import Endpoint, EndpointSet
    from ecsgrpc.errors import (
        BindError,
        ConfigError,
        EcsGrpcError,
        NoEndpointAvailable,
        ResolutionError,
        StreamInterrupted,
    )
    from ecsgrpc.resolvers.base import Resolver
    from ecsgrpc.resolvers.options import ResolverOptions
    from ecsgrpc.resolvers.polling import PollingResolver
    from ecsgrpc.resolvers.registry import register_scheme
    from ecsgrpc.security.client import ClientSecurity
    from ecsgrpc.security.client_tls import ClientTls
    from ecsgrpc.security.tokens import BearerToken
    from ecsgrpc.server import Server, ServerState, ServiceSpec, serve
    from ecsgrpc.targets import parse_target
    from ecsgrpc.telemetry import Telemetry

# Exported name -> module. Loaded on first use (PEP 562), so a small command
# such as `ecsgrpc probe` does not import the resolvers or grpc's aio stack.
# Every type a public signature uses is here too (tests/test_public_api.py).
_EXPORTS = {
    "BalancedChannel": "ecsgrpc.balancing.channel",
    "connect": "ecsgrpc.balancing.channel",
    "OutlierConfig": "ecsgrpc.balancing.outlier",
    "Picker": "ecsgrpc.balancing.picker",
    "register_policy": "ecsgrpc.balancing.picker",
    "RetryPolicy": "ecsgrpc.balancing.retry",
    "StallConfig": "ecsgrpc.balancing.stall",
    "Telemetry": "ecsgrpc.telemetry",
    "EndpointStatus": "ecsgrpc.balancing.status",
    "ServerSettings": "ecsgrpc.config",
    "resolve": "ecsgrpc.discovery",
    "Endpoint": "ecsgrpc.endpoints",
    "EndpointSet": "ecsgrpc.endpoints",
    "BindError": "ecsgrpc.errors",
    "ConfigError": "ecsgrpc.errors",
    "EcsGrpcError": "ecsgrpc.errors",
    "NoEndpointAvailable": "ecsgrpc.errors",
    "ResolutionError": "ecsgrpc.errors",
    "StreamInterrupted": "ecsgrpc.errors",
    "Resolver": "ecsgrpc.resolvers.base",
    "ResolverOptions": "ecsgrpc.resolvers.options",
    "PollingResolver": "ecsgrpc.resolvers.polling",
    "register_scheme": "ecsgrpc.resolvers.registry",
    "ClientSecurity": "ecsgrpc.security.client",
    "ClientTls": "ecsgrpc.security.client_tls",
    "BearerToken": "ecsgrpc.security.tokens",
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
    "BearerToken",
    "BindError",
    "ClientSecurity",
    "ClientTls",
    "ConfigError",
    "EcsGrpcError",
    "Endpoint",
    "EndpointSet",
    "EndpointStatus",
    "NoEndpointAvailable",
    "OutlierConfig",
    "Picker",
    "PollingResolver",
    "ResolutionError",
    "Resolver",
    "ResolverOptions",
    "RetryPolicy",
    "Server",
    "ServerSettings",
    "ServerState",
    "ServiceSpec",
    "StallConfig",
    "StreamInterrupted",
    "Telemetry",
    "connect",
    "parse_target",
    "register_policy",
    "register_scheme",
    "resolve",
    "serve",
]
