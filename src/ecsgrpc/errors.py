"""The one exception hierarchy of ecsgrpc.

Every error the library raises on purpose derives from :class:`EcsGrpcError`,
so callers can catch the family with one clause. Errors from grpc, botocore
or dnspython are translated at the I/O boundary, never leaked raw.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EcsGrpcError",
    "NoEndpointAvailable",
    "ResolutionError",
    "StreamInterrupted",
]


class EcsGrpcError(Exception):
    """Root of every error ecsgrpc raises."""


class ConfigError(EcsGrpcError, ValueError):
    """A target, setting or argument is invalid. The message names the value."""


class ResolutionError(EcsGrpcError):
    """A resolver could not produce an endpoint set (network, API or record error)."""


class NoEndpointAvailable(EcsGrpcError):
    """No endpoint was ready before the call's deadline (or fail-fast was asked)."""


class StreamInterrupted(EcsGrpcError):
    """A stream failed after the caller had received part of it; it is never replayed."""
