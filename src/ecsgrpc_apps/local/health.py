"""An async ``grpc.health.v1`` check of one task, as ECS's container health check does."""

from __future__ import annotations

import enum

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["HealthCheck", "HealthResult"]

# Reconnect quickly while a task starts: gRPC's default backoff (1 s, growing)
# would delay noticing that the server listens.
_OPTIONS = [
    ("grpc.enable_retries", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


class HealthResult(enum.Enum):
    SERVING = "SERVING"
    NOT_SERVING = "NOT_SERVING"  # answered, but not SERVING
    UNREACHABLE = "UNREACHABLE"  # no answer (not listening yet, or gone)


class HealthCheck:
    """One channel to a task; :meth:`check` asks ``Health/Check`` once.

    Use from one event loop; :meth:`aclose` closes the channel.
    """

    def __init__(self, address: str, *, service: str = "", timeout: float = 1.0) -> None:
        self._channel = grpc.aio.insecure_channel(address, options=_OPTIONS)
        self._stub = health_pb2_grpc.HealthStub(self._channel)
        self._request = health_pb2.HealthCheckRequest(service=service)
        self._timeout = timeout

    async def check(self) -> HealthResult:
        """The server's status now; never raises for gRPC errors."""
        try:
            reply = await self._stub.Check(self._request, timeout=self._timeout)
        except grpc.aio.AioRpcError:
            return HealthResult.UNREACHABLE
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            return HealthResult.SERVING
        return HealthResult.NOT_SERVING

    async def aclose(self) -> None:
        await self._channel.close()
