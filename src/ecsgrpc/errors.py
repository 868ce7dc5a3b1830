"""The one exception hierarchy of ecsgrpc.

Every error the library raises on purpose derives from :class:`EcsGrpcError`,
so callers can catch the family with one clause. Errors from grpc, botocore
or dnspython are translated at the I/O boundary, never leaked raw.
"""

from __future__ import annotations

import grpc

__all__ = [
    "BindError",
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


class BindError(ConfigError):
    """A server cannot listen on its address (in use, not local, no permission).
    Commands report it in one line and exit 1."""


class ResolutionError(EcsGrpcError):
    """A resolver could not produce an endpoint set (network, API or record error)."""


class _CallError(EcsGrpcError, grpc.aio.AioRpcError):  # type: ignore[misc]
    """An EcsGrpcError that is also a grpc.aio.AioRpcError, so code written for a
    plain grpc.aio channel (``except grpc.RpcError``, ``exc.code()``) keeps working."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        grpc.aio.AioRpcError.__init__(
            self, code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details
        )

    def __str__(self) -> str:
        return f"{self.code().name}: {self.details()}"


class NoEndpointAvailable(_CallError):
    """No endpoint was ready in time: ``UNAVAILABLE`` (fail-fast or connect timeout)
    or ``DEADLINE_EXCEEDED`` (the call's deadline passed while waiting)."""


class StreamInterrupted(_CallError):
    """A stream failed after the caller had received part of it. It is never
    replayed (that would duplicate output); ``code()`` is the original status."""
