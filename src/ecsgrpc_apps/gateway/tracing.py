"""The HTTP server span of ``POST /v1/conversations`` (OpenTelemetry, optional).

Conversations are served by :class:`~ecsgrpc_apps.gateway.front.Front` before
FastAPI's middleware chain, so FastAPI's own HTTP spans never see them; this
module makes that span, following OpenTelemetry's HTTP server conventions
(name ``POST /v1/conversations``, kind SERVER, ``http.request.method``,
``http.route``, ``url.path``, ``url.scheme``, ``server.address``/``port``,
``http.response.status_code``; ERROR only for 5xx), parented by the caller's
W3C ``traceparent``. It is current while the conversation runs, so the
balanced channel's call span is its child. Nothing is done (and nothing
imported) while no tracer provider is configured.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Message, Receive, Scope, Send

from ecsgrpc.telemetry import available

__all__ = ["traced"]

_NAME = "POST /v1/conversations"


def _tracer() -> Any | None:
    if not available():
        return None
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):  # no SDK configured: stay free
        return None
    return provider.get_tracer("ecsgrpc_apps.gateway")


async def traced(serve: Any, route: str, scope: Scope, receive: Receive, send: Send) -> None:
    """Run ``serve(scope, receive, send)`` inside the request's HTTP server span."""
    tracer = _tracer()
    if tracer is None:
        await serve(scope, receive, send)
        return
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind, Status, StatusCode

    carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
    server = scope.get("server") or (None, None)
    attributes: dict[str, Any] = {
        "http.request.method": scope.get("method", "POST"),
        "http.route": route,
        "url.path": scope.get("path", route),
        "url.scheme": scope.get("scheme", "http"),
    }
    if server[0] is not None:
        attributes["server.address"] = server[0]
    if server[1] is not None:
        attributes["server.port"] = server[1]
    status = {"code": 500}

    async def recording_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status["code"] = message["status"]
        await send(message)

    with tracer.start_as_current_span(
        _NAME,
        context=propagate.extract(carrier),
        kind=SpanKind.SERVER,
        attributes=attributes,
    ) as span:
        await serve(scope, receive, recording_send)
        span.set_attribute("http.response.status_code", status["code"])
        if status["code"] >= 500:
            span.set_status(Status(StatusCode.ERROR))
