"""ecsgrpc: gRPC discovery, balancing, health and draining for AWS ECS.

The public API is what ``__all__`` lists; everything else is internal.
"""

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
    "ConfigError",
    "EcsGrpcError",
    "Endpoint",
    "EndpointSet",
    "NoEndpointAvailable",
    "ResolutionError",
    "Server",
    "ServerState",
    "ServiceSpec",
    "StreamInterrupted",
    "serve",
    "resolve",
    "parse_target",
]
