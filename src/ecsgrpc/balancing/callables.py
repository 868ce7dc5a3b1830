"""grpc.aio multicallables for a balanced channel, with grpc.aio client interceptors.

``channel.unary_unary(method, ...)`` (what generated stubs call) returns one of
these; calling it returns a call from ``calls.py``. Interceptors (grpc.aio's
``UnaryUnaryClientInterceptor`` and its three siblings) run once per *call*,
around all of its attempts: grpc.aio's own intercepted-call classes drive the
chain, and the innermost continuation makes a balanced call. An interceptor
that implements several kinds runs for each of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import grpc
from grpc.aio import _interceptor as grpc_interceptor

from ecsgrpc.balancing.calls import (
    BalancedStreamStreamCall,
    BalancedStreamUnaryCall,
    BalancedUnaryStreamCall,
    BalancedUnaryUnaryCall,
)
from ecsgrpc.balancing.router import Router
from ecsgrpc.errors import ConfigError

__all__ = [
    "Interceptors",
    "StreamStreamMultiCallable",
    "StreamUnaryMultiCallable",
    "UnaryStreamMultiCallable",
    "UnaryUnaryMultiCallable",
]

_KINDS = (
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
)


class Interceptors:
    """A channel's client interceptors, sorted by call kind (validated once)."""

    __slots__ = ("stream_stream", "stream_unary", "unary_stream", "unary_unary")

    def __init__(self, interceptors: Sequence[Any] = ()) -> None:
        for interceptor in interceptors:
            if not isinstance(interceptor, _KINDS):
                raise ConfigError(
                    f"interceptors: {interceptor!r} is not a grpc.aio client interceptor "
                    "(UnaryUnaryClientInterceptor, UnaryStreamClientInterceptor, "
                    "StreamUnaryClientInterceptor or StreamStreamClientInterceptor)"
                )

        def of(kind: type) -> tuple[Any, ...]:
            return tuple(i for i in interceptors if isinstance(i, kind))

        self.unary_unary = of(grpc.aio.UnaryUnaryClientInterceptor)
        self.unary_stream = of(grpc.aio.UnaryStreamClientInterceptor)
        self.stream_unary = of(grpc.aio.StreamUnaryClientInterceptor)
        self.stream_stream = of(grpc.aio.StreamStreamClientInterceptor)


def _method_name(method: Any) -> str:
    return method.decode() if isinstance(method, bytes) else str(method)


class _Callable:
    __slots__ = ("_deserializer", "_interceptors", "_method", "_router", "_serializer")

    def __init__(
        self,
        router: Router,
        method: str,
        serializer: Any,
        deserializer: Any,
        interceptors: tuple[Any, ...],
    ) -> None:
        self._router = router
        self._method = method
        self._serializer = serializer
        self._deserializer = deserializer
        self._interceptors = interceptors


class UnaryUnaryMultiCallable(_Callable, grpc.aio.UnaryUnaryMultiCallable):  # type: ignore[misc]
    __slots__ = ()

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        if self._interceptors:
            return _InterceptedUnaryUnary(
                self._interceptors,
                request,
                timeout,
                metadata,
                credentials,
                wait_for_ready,
                (self._router, compression),
                self._method.encode(),
                self._serializer,
                self._deserializer,
                asyncio.get_running_loop(),
            )
        return BalancedUnaryUnaryCall(
            self._router,
            self._method,
            self._serializer,
            self._deserializer,
            request,
            None,
            timeout,
            metadata,
            credentials,
            wait_for_ready,
            compression,
        )


class UnaryStreamMultiCallable(_Callable, grpc.aio.UnaryStreamMultiCallable):  # type: ignore[misc]
    __slots__ = ()

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        if self._interceptors:
            return _InterceptedUnaryStream(
                self._interceptors,
                request,
                timeout,
                metadata,
                credentials,
                wait_for_ready,
                (self._router, compression),
                self._method.encode(),
                self._serializer,
                self._deserializer,
                asyncio.get_running_loop(),
            )
        return BalancedUnaryStreamCall(
            self._router,
            self._method,
            self._serializer,
            self._deserializer,
            request,
            None,
            timeout,
            metadata,
            credentials,
            wait_for_ready,
            compression,
        )


class StreamUnaryMultiCallable(_Callable, grpc.aio.StreamUnaryMultiCallable):  # type: ignore[misc]
    __slots__ = ()

    def __call__(
        self,
        request_iterator: Any = None,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        if self._interceptors:
            return _InterceptedStreamUnary(
                self._interceptors,
                request_iterator,
                timeout,
                metadata,
                credentials,
                wait_for_ready,
                (self._router, compression),
                self._method.encode(),
                self._serializer,
                self._deserializer,
                asyncio.get_running_loop(),
            )
        return BalancedStreamUnaryCall(
            self._router,
            self._method,
            self._serializer,
            self._deserializer,
            None,
            request_iterator,
            timeout,
            metadata,
            credentials,
            wait_for_ready,
            compression,
        )


class StreamStreamMultiCallable(_Callable, grpc.aio.StreamStreamMultiCallable):  # type: ignore[misc]
    __slots__ = ()

    def __call__(
        self,
        request_iterator: Any = None,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        if self._interceptors:
            return _InterceptedStreamStream(
                self._interceptors,
                request_iterator,
                timeout,
                metadata,
                credentials,
                wait_for_ready,
                (self._router, compression),
                self._method.encode(),
                self._serializer,
                self._deserializer,
                asyncio.get_running_loop(),
            )
        return BalancedStreamStreamCall(
            self._router,
            self._method,
            self._serializer,
            self._deserializer,
            None,
            request_iterator,
            timeout,
            metadata,
            credentials,
            wait_for_ready,
            compression,
        )


# grpc.aio's intercepted calls run the interceptor chain; only the innermost
# continuation differs: it makes a balanced call where grpc makes a core call.
# Their "channel" argument carries (router, compression) here.
def _innermost(kind: type, self: Any, args: tuple[Any, ...]) -> Any:
    method, serializer, deserializer, details, request = args
    router, compression = self._channel
    stream_request = kind in (BalancedStreamUnaryCall, BalancedStreamStreamCall)
    return kind(
        router,
        _method_name(details.method or method),
        serializer,
        deserializer,
        None if stream_request else request,
        request if stream_request else None,
        details.timeout,
        details.metadata,
        details.credentials,
        details.wait_for_ready,
        compression,
    )


class _InterceptedUnaryUnary(grpc_interceptor.InterceptedUnaryUnaryCall):  # type: ignore[misc]
    async def _run_interceptor(self, interceptors: Any, *args: Any) -> Any:
        if interceptors:
            return await super()._run_interceptor(interceptors, *args)
        return _innermost(BalancedUnaryUnaryCall, self, args)


class _InterceptedUnaryStream(grpc_interceptor.InterceptedUnaryStreamCall):  # type: ignore[misc]
    async def _run_interceptor(self, interceptors: Any, *args: Any) -> Any:
        if interceptors:
            return await super()._run_interceptor(interceptors, *args)
        self._last_returned_call_from_interceptors = _innermost(BalancedUnaryStreamCall, self, args)
        return self._last_returned_call_from_interceptors


class _InterceptedStreamUnary(grpc_interceptor.InterceptedStreamUnaryCall):  # type: ignore[misc]
    async def _run_interceptor(self, interceptors: Any, *args: Any) -> Any:
        if interceptors:
            return await super()._run_interceptor(interceptors, *args)
        return _innermost(BalancedStreamUnaryCall, self, args)


class _InterceptedStreamStream(grpc_interceptor.InterceptedStreamStreamCall):  # type: ignore[misc]
    async def _run_interceptor(self, interceptors: Any, *args: Any) -> Any:
        if interceptors:
            return await super()._run_interceptor(interceptors, *args)
        self._last_returned_call_from_interceptors = _innermost(
            BalancedStreamStreamCall, self, args
        )
        return self._last_returned_call_from_interceptors
