"""Caller authentication on the server: a shared bearer token, or your own check.

:class:`TokenAuthInterceptor` admits a call when its ``authorization``
metadata is exactly ``Bearer <token>`` (compared with ``hmac.compare_digest``,
in constant time), and otherwise ends it with ``UNAUTHENTICATED`` before the
request is read or parsed. Health (``grpc.health.v1``) stays open: ECS
container health checks and load-balancer probes run without the token, and
health reveals nothing but SERVING/NOT_SERVING. Reflection is protected.

For any other scheme (JWT, IAM-signed headers, peer certificate checks),
pass your own ``grpc.aio.ServerInterceptor`` in ``serve(interceptors=...)``,
or subclass :class:`AuthInterceptor` and implement :meth:`admit`.

Rejections are logged without the token (at most one line per 10 seconds,
with a count of those not logged).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable

import grpc

from ecsgrpc.security.tokens import BearerToken
from ecsgrpc.server.handlers import rejecting_handler

__all__ = ["OPEN_PREFIXES", "AuthInterceptor", "TokenAuthInterceptor"]

log = logging.getLogger(__name__)

# Methods anyone may call: health checks run without credentials.
OPEN_PREFIXES: tuple[str, ...] = ("/grpc.health.v1.Health/",)
_LOG_EVERY_SECONDS = 10.0


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Base: calls :meth:`admit` for every method outside ``open_prefixes``.

    ``admit`` returns None to let the call through, or a reason (logged, and
    sent as the status details) to end it with ``UNAUTHENTICATED``.
    """

    def __init__(self, *, open_prefixes: tuple[str, ...] = OPEN_PREFIXES) -> None:
        self._open = open_prefixes
        self._last_log = 0.0
        self._not_logged = 0
        self.rejected = 0

    def admit(self, method: str, metadata: tuple[tuple[str, str | bytes], ...]) -> str | None:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method
        if method.startswith(self._open):
            return await continuation(handler_call_details)
        reason = self.admit(method, tuple(handler_call_details.invocation_metadata or ()))
        if reason is None:
            return await continuation(handler_call_details)
        self.rejected += 1
        self._log_rejection(method, reason)
        return rejecting_handler(grpc.StatusCode.UNAUTHENTICATED, reason)

    def _log_rejection(self, method: str, reason: str) -> None:
        now = time.monotonic()
        if now - self._last_log < _LOG_EVERY_SECONDS:
            self._not_logged += 1
            return
        log.warning(
            "rejected %s: %s (%d more rejections not logged)",
            method,
            reason,
            self._not_logged,
            extra={"event": "unauthenticated", "method": method},
        )
        self._last_log = now
        self._not_logged = 0


class TokenAuthInterceptor(AuthInterceptor):
    """Requires ``authorization: Bearer <token>`` on every non-health call."""

    def __init__(
        self, token: BearerToken, *, open_prefixes: tuple[str, ...] = OPEN_PREFIXES
    ) -> None:
        super().__init__(open_prefixes=open_prefixes)
        self._expected = token.header_value().encode("ascii")

    def __repr__(self) -> str:
        return "TokenAuthInterceptor(<token redacted>)"

    def admit(self, method: str, metadata: tuple[tuple[str, str | bytes], ...]) -> str | None:
        given = [value for key, value in metadata if key == "authorization"]
        if not given:
            return "missing authorization metadata (expected 'Bearer <token>')"
        value = given[0]
        raw = value if isinstance(value, bytes) else value.encode("utf-8", "replace")
        if len(given) > 1 or not hmac.compare_digest(raw, self._expected):
            return "invalid bearer token"
        return None
