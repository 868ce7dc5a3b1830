"""Server interceptor that counts application calls and records server metrics.

The count lets the server end its drain as soon as the application's own calls
are done, rather than waiting out the grace for long-lived health watches:
calls of ``ignore_prefixes`` methods (health watches, reflection streams) are
not counted but their tasks are kept, so :meth:`InFlightInterceptor.cancel_ignored`
can end them once the counted calls are done.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from ecsgrpc.metrics import ServerMetrics
from ecsgrpc.server.handlers import wrap_handler

__all__ = ["InFlightInterceptor"]

_Behavior = Callable[..., Any]


class InFlightInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts in-flight calls (except ``ignore_prefixes`` methods) and observes metrics."""

    def __init__(self, metrics: ServerMetrics, *, ignore_prefixes: tuple[str, ...] = ()) -> None:
        self._metrics = metrics
        self._ignore = ignore_prefixes
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._ignored_tasks: set[asyncio.Task[Any]] = set()
        self._ending_ignored = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def wait_idle(self) -> None:
        """Return once no tracked call is in flight."""
        while self._in_flight:
            self._idle.clear()
            await self._idle.wait()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None:
            return handler
        if method.startswith(self._ignore):
            return wrap_handler(handler, self._remember_task)
        return _wrap_handler(handler, self, method)

    def cancel_ignored(self) -> int:
        """End the running calls of ignored methods (health watches) with
        UNAVAILABLE "server is stopping", so a graceful stop need not wait for
        them. Returns how many were ended."""
        self._ending_ignored = True
        tasks = [t for t in self._ignored_tasks if not t.done()]
        for task in tasks:
            task.cancel()
        return len(tasks)

    def _remember_task(self, behavior: _Behavior, streaming: bool) -> _Behavior:
        """Wrap an ignored method so :meth:`cancel_ignored` can end it with a
        status (a bare task cancel leaves the call open until the grace ends)."""
        tasks = self._ignored_tasks

        def ended(context: grpc.aio.ServicerContext) -> bool:
            if not self._ending_ignored:
                return False
            context.set_code(grpc.StatusCode.UNAVAILABLE)
            context.set_details("server is stopping")
            return True

        if inspect.isasyncgenfunction(behavior):

            async def generator(request: Any, context: grpc.aio.ServicerContext) -> Any:
                task = asyncio.current_task()
                if task is not None:
                    tasks.add(task)
                try:
                    async for item in behavior(request, context):
                        yield item
                except asyncio.CancelledError:
                    if not ended(context):
                        raise
                finally:
                    tasks.discard(task)

            return generator

        async def coroutine(request: Any, context: grpc.aio.ServicerContext) -> Any:
            task = asyncio.current_task()
            if task is not None:
                tasks.add(task)
            try:
                return await behavior(request, context)
            except asyncio.CancelledError:
                if not ended(context):
                    raise
                return None
            finally:
                tasks.discard(task)

        return coroutine

    # Accounting, called by the wrappers below.
    def _begin(self, method: str) -> float:
        self._in_flight += 1
        self._idle.clear()
        self._metrics.in_flight.labels(method).inc()
        return time.perf_counter()

    def _end(self, method: str, started: float, code: str) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()
        self._metrics.in_flight.labels(method).dec()
        self._metrics.calls.labels(method, code).inc()
        self._metrics.duration.labels(method, code).observe(time.perf_counter() - started)


def _code_of(context: grpc.aio.ServicerContext, exc: BaseException | None) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "CANCELLED"
    code = context.code()
    if code is None or code == 0:
        return "UNKNOWN" if exc is not None else "OK"
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    try:
        return str(grpc.StatusCode(code).name)  # may be an int in some versions
    except ValueError:
        return str(code)


def _wrap_unary(behavior: _Behavior, tracker: InFlightInterceptor, method: str) -> _Behavior:
    async def wrapper(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        started = tracker._begin(method)
        error: BaseException | None = None
        try:
            return await behavior(request_or_iterator, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            tracker._end(method, started, _code_of(context, error))

    return wrapper


def _wrap_streaming(behavior: _Behavior, tracker: InFlightInterceptor, method: str) -> _Behavior:
    if not inspect.isasyncgenfunction(behavior):
        return _wrap_unary(behavior, tracker, method)  # uses context.write()

    async def wrapper(
        request_or_iterator: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        started = tracker._begin(method)
        error: BaseException | None = None
        try:
            async for item in behavior(request_or_iterator, context):
                yield item
        except BaseException as exc:
            error = exc
            raise
        finally:
            tracker._end(method, started, _code_of(context, error))

    return wrapper


def _wrap_handler(
    handler: grpc.RpcMethodHandler, tracker: InFlightInterceptor, method: str
) -> grpc.RpcMethodHandler:
    kw = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary(handler.unary_unary, tracker, method), **kw
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            _wrap_streaming(handler.unary_stream, tracker, method), **kw
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            _wrap_unary(handler.stream_unary, tracker, method), **kw
        )
    return grpc.stream_stream_rpc_method_handler(
        _wrap_streaming(handler.stream_stream, tracker, method), **kw
    )
