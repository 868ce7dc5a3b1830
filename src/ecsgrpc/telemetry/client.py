"""Client side: a span per balanced call, an event per attempt, gRFC A66 client metrics.

The call objects (``balancing/calls.py``) drive a :class:`CallTrace` through
its whole life: ``start`` when the call begins, ``attempt`` for each attempt
(returns the metadata to send, with ``traceparent``), ``attempt_ended`` when an
attempt's outcome is known, ``retrying`` when the router decided to retry,
``finished`` once. Import only when ``opentelemetry-api`` is installed.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ecsgrpc.telemetry import Telemetry
from ecsgrpc.telemetry._semconv import (
    INSTRUMENTATION,
    LATENCY_BUCKETS,
    Activity,
    rpc_attributes,
    split_address,
    split_method,
)

__all__ = ["CallTrace", "ClientTelemetry"]


class ClientTelemetry:
    """Tracer and A66 instruments of one channel (``grpc.target`` = its target)."""

    __slots__ = (
        "active",
        "attempt_duration",
        "attempts_started",
        "call_duration",
        "target",
        "tracer",
    )

    def __init__(self, telemetry: Telemetry, target: str) -> None:
        self.target = target
        self.active = Activity(telemetry.tracer_provider, telemetry.meter_provider)
        self.tracer = trace.get_tracer(INSTRUMENTATION, tracer_provider=telemetry.tracer_provider)
        meter = metrics.get_meter(INSTRUMENTATION, meter_provider=telemetry.meter_provider)
        self.attempts_started = meter.create_counter(
            "grpc.client.attempt.started",
            unit="{attempt}",
            description="Number of client call attempts started.",
        )
        self.attempt_duration = meter.create_histogram(
            "grpc.client.attempt.duration",
            unit="s",
            description="End-to-end time taken to complete a client call attempt.",
            explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS),
        )
        self.call_duration = meter.create_histogram(
            "grpc.client.call.duration",
            unit="s",
            description="Time taken by gRPC to complete an RPC from application's perspective.",
            explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS),
        )

    def call(self, method: str) -> CallTrace | None:
        """A trace for one call of ``method``, parented by the current context;
        None while nothing would record it (see :class:`Activity`)."""
        active = self.active
        if (  # Activity.__call__'s fast "off" answer, inlined: this runs on every call
            not active._active
            and active._trace is not None
            and active._trace._TRACER_PROVIDER is None
            and active._metrics._METER_PROVIDER is None
        ):
            return None
        return CallTrace(self, method) if active() else None


class CallTrace:
    """One call's span and metrics. One event loop; each method cheap."""

    __slots__ = (
        "_attempt_started",
        "_attempts",
        "_carrier",
        "_created",
        "_full",
        "_labels",
        "_name",
        "_parent",
        "_reason",
        "_service",
        "_span",
        "_tel",
    )

    def __init__(self, tel: ClientTelemetry, method: str) -> None:
        self._tel = tel
        self._full, self._service, self._name = split_method(method)
        self._labels = {"grpc.method": self._full, "grpc.target": tel.target}
        self._parent = otel_context.get_current()
        self._created = time.monotonic()
        self._span: trace.Span | None = None
        self._carrier: list[tuple[str, str]] | None = None
        self._attempts = 0
        self._attempt_started: float | None = None
        self._reason: str | None = None

    def start(self) -> None:
        if self._span is None:
            self._span = self._tel.tracer.start_span(
                self._full,
                context=self._parent,
                kind=SpanKind.CLIENT,
                attributes=rpc_attributes(self._service, self._name),
            )

    def attempt(self, address: str, zone: str | None, metadata: Any) -> tuple[tuple[str, str], ...]:
        """An attempt starts on ``address``: returns ``metadata`` plus trace context."""
        self.start()
        span = self._span
        assert span is not None
        self._attempts += 1
        self._attempt_started = time.monotonic()
        self._tel.attempts_started.add(1, self._labels)
        host, port = split_address(address)
        event: dict[str, Any] = {"ecsgrpc.attempt": self._attempts, "server.address": host}
        if port is not None:
            event["server.port"] = port
        if zone:
            event["ecsgrpc.endpoint.zone"] = zone
        if self._reason is not None:
            event["ecsgrpc.retry.reason"] = self._reason
        span.add_event("attempt", event)
        span.set_attribute("server.address", host)
        if port is not None:
            span.set_attribute("server.port", port)
        if self._carrier is None:
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span, self._parent))
            self._carrier = list(carrier.items())
        names = {key for key, _ in self._carrier}
        kept = tuple((k, v) for k, v in (metadata or ()) if k not in names)
        return (*kept, *self._carrier)

    def attempt_ended(self, code: grpc.StatusCode) -> None:
        started, self._attempt_started = self._attempt_started, None
        if started is not None:
            self._tel.attempt_duration.record(
                time.monotonic() - started, {**self._labels, "grpc.status": code.name}
            )

    def retrying(self, code: grpc.StatusCode) -> None:
        """The router retries after an attempt failed with ``code`` (the next attempt's reason)."""
        self._reason = code.name

    def finished(self, code: grpc.StatusCode, details: str | None = None) -> None:
        self.attempt_ended(code)
        self._tel.call_duration.record(
            time.monotonic() - self._created, {**self._labels, "grpc.status": code.name}
        )
        self.start()
        span = self._span
        assert span is not None
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        span.set_attribute("ecsgrpc.attempts", self._attempts)
        if code is not grpc.StatusCode.OK:
            span.set_status(Status(StatusCode.ERROR, details or code.name))
        span.end()
