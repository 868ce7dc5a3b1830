"""A minimal OTLP/gRPC receiver on loopback: keeps the spans and metric points it is sent.

For the demo (a trace in its summary) and the tests (spans exported by real
processes). Not a collector for production: it keeps everything in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2

__all__ = ["OtlpReceiver", "SpanRecord"]

_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


def _value(value: common_pb2.AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return _attrs(value.kvlist_value.values)
    return getattr(value, which)


def _attrs(values: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in values}


@dataclass(frozen=True)
class SpanRecord:
    """One exported span, flattened (ids in lowercase hex, as in ``traceparent``)."""

    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict[str, Any] = field(default_factory=dict)
    events: tuple[tuple[str, dict[str, Any]], ...] = ()

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "name": self.name,
            "kind": self.kind,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id or None,
            "duration_ms": round(self.duration_ms, 3),
            "status": self.status,
            "attributes": self.attributes,
            "events": [{"name": n, "attributes": a} for n, a in self.events],
        }


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, spans: list[SpanRecord]) -> None:
        self._spans = spans

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = str(_attrs(resource_spans.resource.attributes).get("service.name", ""))
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self._spans.append(
                        SpanRecord(
                            service=service,
                            name=span.name,
                            kind=_KINDS.get(span.kind, str(span.kind)),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            status=_STATUS.get(span.status.code, str(span.status.code)),
                            attributes=_attrs(span.attributes),
                            events=tuple((e.name, _attrs(e.attributes)) for e in span.events),
                        )
                    )
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, names: dict[str, set[str]]) -> None:
        self._names = names

    async def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: Any
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        for resource_metrics in request.resource_metrics:
            service = str(_attrs(resource_metrics.resource.attributes).get("service.name", ""))
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    self._names.setdefault(service, set()).add(metric.name)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class OtlpReceiver:
    """``async with OtlpReceiver("127.0.0.1") as rx``: ``rx.endpoint`` is the
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` to give exporters; ``rx.spans`` what came."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._bind = f"{host}:{port}"
        self._host = host
        self.spans: list[SpanRecord] = []
        self.metric_names: dict[str, set[str]] = {}
        self._server: grpc.aio.Server | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _Traces(self.spans), server
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _Metrics(self.metric_names), server
        )
        self.port = server.add_insecure_port(self._bind)
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0.5)
            self._server = None

    async def __aenter__(self) -> OtlpReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def trace(self, trace_id: str) -> list[SpanRecord]:
        """The spans of one trace, parents before children, then by start time."""
        spans = sorted((s for s in self.spans if s.trace_id == trace_id), key=lambda s: s.start_ns)
        ids = {s.span_id for s in spans}
        ordered: list[SpanRecord] = []

        def visit(parent: str) -> None:
            for span in spans:
                root = parent == "" and span.parent_span_id not in ids
                if (span.parent_span_id == parent or root) and span not in ordered:
                    ordered.append(span)
                    visit(span.span_id)

        visit("")
        return ordered
