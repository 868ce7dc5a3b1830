"""A server-side cap on how long any call may run (``GRPC_MAX_CALL_SECONDS``).

A call whose client set no deadline, or a longer one, is ended at the cap
with ``DEADLINE_EXCEEDED`` and a message naming the limit, so a stuck or
abusive client cannot hold a handler forever. A call with a shorter deadline
is unaffected (gRPC ends it itself). Health and reflection are exempt: their
watches are meant to stay open.

Streaming responses: one timer per call; when it fires while the handler is
computing its next message, that wait is cancelled (inside the handler's own
code, never at a ``yield``), and when it fires while the caller is reading,
the stream ends before the next message.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from ecsgrpc.server.handlers import Behavior, wrap_handler

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
            # One timer per call (not one per message): when it fires while the
            # handler is computing its next message, that wait is cancelled;
            # while the caller reads, the next loop turn sees ``fired``.
            task = asyncio.current_task()
            loop = asyncio.get_running_loop()
            clock = _StreamClock(task)
            timer = loop.call_at(loop.time() + self.max_seconds, clock.fire)
            responses = behavior(request, context)
            try:
                while True:
                    if clock.fired:
                        await self._cut(context)
                    clock.inside = True
                    try:
                        item = await anext(responses)
                    except StopAsyncIteration:
                        return
                    except asyncio.CancelledError:
                        if not clock.fired or task is None:
                            raise
                        task.uncancel()
                        await self._cut(context)
                    finally:
                        clock.inside = False
                    yield item
            finally:
                timer.cancel()
                await responses.aclose()

        return capped


class _StreamClock:
    """Where a capped stream is (inside the handler's next message or not) and
    whether its time is up."""

    __slots__ = ("fired", "inside", "task")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task
        self.inside = False
        self.fired = False

    def fire(self) -> None:
        self.fired = True
        if self.inside and self.task is not None:
            self.task.cancel()
