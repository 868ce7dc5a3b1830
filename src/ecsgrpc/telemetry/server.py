"""Server side: a SERVER span per call, parented by the caller's ``traceparent``,
and gRFC A66's ``grpc.server.call.started`` / ``grpc.server.call.duration``.

Import only when ``opentelemetry-api`` is installed. The span is the current
span while the handler runs, so spans the handler starts are its children.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ecsgrpc.security.handlers import wrap_handler
from ecsgrpc.telemetry import Telemetry
from ecsgrpc.telemetry._semconv import (
    INSTRUMENTATION,
    LATENCY_BUCKETS,
    SERVER_ERROR_CODES,
    Activity,
    rpc_attributes,
    split_address,
    split_method,
)

__all__ = ["TracingInterceptor"]

_Behavior = Callable[..., Any]


def _metadata_getter(context: grpc.aio.ServicerContext) -> dict[str, str]:
    carrier: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):
            carrier[key] = value
    return carrier


def _status_of(context: grpc.aio.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int) and code:
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return status
    return grpc.StatusCode.UNKNOWN if error is not None else grpc.StatusCode.OK


class TracingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Traces and measures every call (first in the chain, so it sees rejections too).

    ``local_address`` (``host:port``, set once bound) becomes ``server.address``
    and ``server.port`` of the spans.
    """

    def __init__(self, telemetry: Telemetry, *, ignore_prefixes: tuple[str, ...] = ()) -> None:
        self._tracer = trace.get_tracer(INSTRUMENTATION, tracer_provider=telemetry.tracer_provider)
        meter = metrics.get_meter(INSTRUMENTATION, meter_provider=telemetry.meter_provider)
        self._started = meter.create_counter(
            "grpc.server.call.started",
            unit="{call}",
            description="Number of server calls started.",
        )
        self._duration = meter.create_histogram(
            "grpc.server.call.duration",
            unit="s",
            description="End-to-end time taken to complete a call from server transport's "
            "perspective.",
            explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS),
        )
        self._ignore = ignore_prefixes
        self._local: dict[str, Any] = {}
        self._active = Activity(telemetry.tracer_provider, telemetry.meter_provider)

    def set_local_address(self, address: str) -> None:
        host, port = split_address(address)
        self._local = {"server.address": host} | ({} if port is None else {"server.port": port})

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(self._ignore) or not self._active():
            return handler
        return wrap_handler(handler, lambda behavior, _: self._wrap(behavior, method))

    def _start(self, method: str, context: grpc.aio.ServicerContext) -> tuple[Any, float]:
        full, service, name = split_method(method)
        self._started.add(1, {"grpc.method": full})
        attributes: dict[str, Any] = {**rpc_attributes(service, name), **self._local}
        peer_host, peer_port = split_address(context.peer() or "")
        if peer_host:
            attributes["network.peer.address"] = peer_host
            if peer_port is not None:
                attributes["network.peer.port"] = peer_port
        span = self._tracer.start_span(
            full,
            context=propagate.extract(_metadata_getter(context)),
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        return span, time.monotonic()

    def _end(
        self,
        method: str,
        span: Any,
        started: float,
        context: grpc.aio.ServicerContext,
        error: BaseException | None,
    ) -> None:
        code = _status_of(context, error)
        self._duration.record(
            time.monotonic() - started,
            {"grpc.method": split_method(method)[0], "grpc.status": code.name},
        )
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code in SERVER_ERROR_CODES:
            details = context.details() if hasattr(context, "details") else None
            span.set_status(Status(StatusCode.ERROR, str(details or code.name)))
        span.end()

    def _wrap(self, behavior: _Behavior, method: str) -> _Behavior:
        if inspect.isasyncgenfunction(behavior):

            async def generator(
                request: Any, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                span, started = self._start(method, context)
                error: BaseException | None = None
                try:
                    with trace.use_span(
                        span,
                        end_on_exit=False,
                        record_exception=False,
                        set_status_on_exception=False,
                    ):
                        async for item in behavior(request, context):
                            yield item
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    self._end(method, span, started, context, error)

            return generator

        async def coroutine(request: Any, context: grpc.aio.ServicerContext) -> Any:
            span, started = self._start(method, context)
            error: BaseException | None = None
            try:
                with trace.use_span(
                    span, end_on_exit=False, record_exception=False, set_status_on_exception=False
                ):
                    return await behavior(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                self._end(method, span, started, context, error)

        return coroutine
