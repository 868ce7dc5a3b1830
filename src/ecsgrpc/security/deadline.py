"""A server-side cap on how long any call may run (``GRPC_MAX_CALL_SECONDS``).

A call whose client set no deadline, or a longer one, is ended at the cap
with ``DEADLINE_EXCEEDED`` and a message naming the limit, so a stuck or
abusive client cannot hold a handler forever. A call with a shorter deadline
is unaffected (gRPC ends it itself). Health and reflection are exempt: their
watches are meant to stay open.

Streaming responses: the cap covers the wait for each next message *inside*
the handler (never a ``yield``, so a cancellation always lands in the
handler's own code) and is checked again before every message.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from ecsgrpc.security.handlers import Behavior, wrap_handler

__all__ = ["DeadlineCapInterceptor"]

_EXEMPT = ("/grpc.health.v1.", "/grpc.reflection.")


class DeadlineCapInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Ends calls that run longer than ``max_seconds`` with DEADLINE_EXCEEDED."""

    def __init__(self, max_seconds: float, *, exempt_prefixes: tuple[str, ...] = _EXEMPT) -> None:
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0, got {max_seconds!r}")
        self.max_seconds = max_seconds
        self._exempt = exempt_prefixes
        self.cut = 0

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(self._exempt):
            return handler
        return wrap_handler(handler, self._wrap)

    def _message(self) -> str:
        return f"call exceeded the server's limit of {self.max_seconds:g}s (GRPC_MAX_CALL_SECONDS)"

    async def _cut(self, context: grpc.aio.ServicerContext) -> None:
        self.cut += 1
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, self._message())

    def _wrap(self, behavior: Behavior, streaming: bool) -> Behavior:
        if streaming and inspect.isasyncgenfunction(behavior):
            return self._wrap_stream(behavior)
        return self._wrap_unary(behavior)

    def _wrap_unary(self, behavior: Behavior) -> Behavior:
        async def capped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            timeout = asyncio.timeout(self.max_seconds)
            try:
                async with timeout:
                    return await behavior(request, context)
            except TimeoutError:
                if not timeout.expired():
                    raise
                await self._cut(context)

        return capped

    def _wrap_stream(self, behavior: Behavior) -> Behavior:
        async def capped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.max_seconds
            responses = behavior(request, context)
            try:
                while True:
                    if loop.time() >= deadline:  # passed while the caller read slowly
                        await self._cut(context)
                    timeout = asyncio.timeout_at(deadline)
                    try:
                        async with timeout:
                            item = await anext(responses)
                    except StopAsyncIteration:
                        return
                    except TimeoutError:
                        if not timeout.expired():
                            raise
                        await self._cut(context)
                    yield item
            finally:
                await responses.aclose()

        return capped
