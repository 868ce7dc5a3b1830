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
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import grpc
from grpc.aio import _interceptor as grpc_interceptor

from ecsgrpc.balancing import unary
from ecsgrpc.balancing.attempts import CallAttempts
from ecsgrpc.balancing.calls import (
    BalancedStreamStreamCall,
    BalancedStreamUnaryCall,
    BalancedUnaryStreamCall,
    BalancedUnaryUnaryCall,
)
from ecsgrpc.balancing.router import Router
from ecsgrpc.balancing.subchannel import NATIVE_UNARY
from ecsgrpc.errors import ConfigError

__all__ = [
    "Interceptors",
    "StreamStreamMultiCallable",
    "StreamUnaryMultiCallable",
    "UnaryStreamMultiCallable",
    "UnaryUnaryMultiCallable",
]

_NATIVE = unary.AVAILABLE
_NativeCall = unary.NativeUnaryUnaryCall
_init_metadata = unary.init_metadata
_NATIVE_UNARY = NATIVE_UNARY
_time = time.time
_monotonic = time.monotonic
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


# grpc.aio's intercepted calls run the interceptor chain; only the innermost
# continuation differs: it makes a balanced call where grpc makes a core call.
# Their "channel" argument carries (router, compression) here.
class _Innermost:
    """Mixed into grpc.aio's four intercepted-call classes (before them)."""

    _balanced: type[CallAttempts]  # the balanced call class of the kind
    _channel: tuple[Router, grpc.Compression | None]

    async def _run_interceptor(self, interceptors: Any, *args: Any) -> Any:
        if interceptors:
            return await super()._run_interceptor(interceptors, *args)  # type: ignore[misc]
        method, serializer, deserializer, details, request = args
        router, compression = self._channel
        kind = self._balanced
        stream_request = kind._stream_request
        call = kind(
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
        if not kind._unary_response:  # grpc's stream-response classes read it back
            self._last_returned_call_from_interceptors = call
        return call


class _InterceptedUnaryUnary(_Innermost, grpc_interceptor.InterceptedUnaryUnaryCall):  # type: ignore[misc]
    _balanced = BalancedUnaryUnaryCall


class _InterceptedUnaryStream(_Innermost, grpc_interceptor.InterceptedUnaryStreamCall):  # type: ignore[misc]
    _balanced = BalancedUnaryStreamCall


class _InterceptedStreamUnary(_Innermost, grpc_interceptor.InterceptedStreamUnaryCall):  # type: ignore[misc]
    _balanced = BalancedStreamUnaryCall


class _InterceptedStreamStream(_Innermost, grpc_interceptor.InterceptedStreamStreamCall):  # type: ignore[misc]
    _balanced = BalancedStreamStreamCall


class _MultiCallable:
    """One implementation for the four kinds, parameterised by two class attributes:
    the balanced call class and grpc.aio's intercepted-call class of the kind."""

    __slots__ = ("_deserializer", "_interceptors", "_method", "_router", "_serializer")

    _balanced: type[CallAttempts]
    _intercepted: type[_Innermost]

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

    def _call(
        self,
        request: Any,
        timeout: float | None,
        metadata: Any,
        credentials: grpc.CallCredentials | None,
        wait_for_ready: bool | None,
        compression: grpc.Compression | None,
    ) -> Any:
        """A call of this kind; ``request`` is the request iterator for streaming requests."""
        if self._interceptors:
            return self._intercepted(  # type: ignore[call-arg]
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
        stream_request = self._balanced._stream_request
        return self._balanced(
            self._router,
            self._method,
            self._serializer,
            self._deserializer,
            None if stream_request else request,
            request if stream_request else None,
            timeout,
            metadata,
            credentials,
            wait_for_ready,
            compression,
        )


class _UnaryRequest(_MultiCallable):
    """grpc.aio's signature for one request: keyword-only options."""

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
        if not self._interceptors:  # the common case, one call of ours less
            return self._balanced(
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
        return self._call(request, timeout, metadata, credentials, wait_for_ready, compression)


class _StreamRequest(_MultiCallable):
    """grpc.aio's signature for a request stream: an optional iterator, options positional too."""

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
        if not self._interceptors:  # the common case, one call of ours less
            return self._balanced(
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
        return self._call(
            request_iterator, timeout, metadata, credentials, wait_for_ready, compression
        )


class UnaryUnaryMultiCallable(_UnaryRequest, grpc.aio.UnaryUnaryMultiCallable):  # type: ignore[misc]
    """A unary method: its calls are grpc.aio's own calls (:mod:`ecsgrpc.balancing.unary`)
    when an endpoint is ready and nothing needs the general path (interceptors,
    OpenTelemetry recording, a per-attempt timeout); else balanced calls."""

    __slots__ = ("_native", "_otel_metrics", "_otel_trace")
    _balanced = BalancedUnaryUnaryCall
    _intercepted = _InterceptedUnaryUnary

    def __init__(
        self,
        router: Router,
        method: str,
        serializer: Any,
        deserializer: Any,
        interceptors: tuple[Any, ...],
    ) -> None:
        super().__init__(router, method, serializer, deserializer, interceptors)
        native = _NATIVE and not interceptors and router.per_attempt_timeout is None
        self._otel_trace: Any = None
        self._otel_metrics: Any = None
        telemetry = router.telemetry
        if native and telemetry is not None:
            # ClientTelemetry.call()'s fast "off" answer, split: what cannot change
            # now, what can (a global provider set later) on every call below.
            active = telemetry.active
            if active._active or active._trace is None:
                native = False  # recording, or not knowable cheaply: the general path
            else:
                self._otel_trace, self._otel_metrics = active._trace, active._metrics
        self._native = native

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
        trace = self._otel_trace
        if self._native and (
            trace is None
            or (trace._TRACER_PROVIDER is None and self._otel_metrics._METER_PROVIDER is None)
        ):
            router = self._router
            sub = router.begin_now()
            if sub is not None:
                # An endpoint is ready: grpc.aio's own call on it, made as grpc.aio's
                # multicallable makes one (the per-call path).
                method = self._method
                try:
                    callable_, merge = sub.callables[_NATIVE_UNARY, method]
                except KeyError:
                    callable_, merge = sub.native_unary(
                        method, self._serializer, self._deserializer
                    )
                if merge is not None:  # the channel's own metadata (security)
                    metadata = merge(metadata)
                call = _NativeCall(
                    request,
                    None if timeout is None else _time() + timeout,
                    _init_metadata(metadata, compression),
                    credentials,
                    False,  # one attempt: waiting for an endpoint is the successor's
                    callable_._channel,
                    callable_._method,
                    callable_._request_serializer,
                    callable_._response_deserializer,
                    callable_._loop,
                    callable_._registered_call_handle,
                )
                # Its invocation task runs from the loop's next turn, after these.
                call._router = router
                call._sub = sub
                call._name = method
                call._created = _monotonic()
                if credentials is not None or wait_for_ready is not None:
                    call._options = (credentials, wait_for_ready)
                # grpc.aio's Channel._register_call (its close() cancels the call),
                # without our add_done_callback: the first attempt's end is enough.
                active = callable_._python_channel._active_calls
                active.add(call)
                call._cython_call.add_done_callback(partial(active.discard, call))
                return call
        return _UnaryRequest.__call__(
            self,
            request,
            timeout=timeout,
            metadata=metadata,
            credentials=credentials,
            wait_for_ready=wait_for_ready,
            compression=compression,
        )


class UnaryStreamMultiCallable(_UnaryRequest, grpc.aio.UnaryStreamMultiCallable):  # type: ignore[misc]
    __slots__ = ()
    _balanced = BalancedUnaryStreamCall
    _intercepted = _InterceptedUnaryStream


class StreamUnaryMultiCallable(_StreamRequest, grpc.aio.StreamUnaryMultiCallable):  # type: ignore[misc]
    __slots__ = ()
    _balanced = BalancedStreamUnaryCall
    _intercepted = _InterceptedStreamUnary


class StreamStreamMultiCallable(_StreamRequest, grpc.aio.StreamStreamMultiCallable):  # type: ignore[misc]
    __slots__ = ()
    _balanced = BalancedStreamStreamCall
    _intercepted = _InterceptedStreamStream
