"""``create_app``: the API Gateway as a FastAPI application.

Routes: ``POST /v1/conversations`` (SSE or JSON), ``GET /healthz``,
``GET /readyz``, ``GET /metrics``, ``GET /debug/endpoints``, the chat page at
``/``, and the OpenAPI document at ``/openapi.json`` (``/docs`` renders it
when ``GATEWAY_DOCS`` is on: its viewer loads assets from a CDN).

Every request enters through :class:`~ecsgrpc_apps.gateway.front.Front`
(:class:`GatewayApp` calls it first): it serves ``POST /v1/conversations``
itself, with admission control, and hands the rest to FastAPI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from starlette.types import Receive, Scope, Send

from ecsgrpc.metrics import gateway_metrics
from ecsgrpc_apps.gateway.conversations import Conversations
from ecsgrpc_apps.gateway.errors import error_responses, install_handlers
from ecsgrpc_apps.gateway.front import Front
from ecsgrpc_apps.gateway.instrument import RequestMetrics, overload_metrics
from ecsgrpc_apps.gateway.lifecycle import GatewayState, Lifecycle
from ecsgrpc_apps.gateway.limiter import AdaptiveLimit, LagMonitor, LimitConfig
from ecsgrpc_apps.gateway.models import (
    ConversationIn,
    ConversationReply,
    EndpointOut,
    Health,
    Readiness,
)
from ecsgrpc_apps.gateway.settings import GatewaySettings
from ecsgrpc_apps.workflow.client import WorkflowClient

__all__ = ["CONVERSATIONS_PATH", "GatewayApp", "create_app"]

CONVERSATIONS_PATH = "/v1/conversations"
_PATHS = frozenset({CONVERSATIONS_PATH, "/healthz", "/readyz", "/metrics", "/debug/endpoints", "/"})


class GatewayApp(FastAPI):
    """The FastAPI app whose requests all start in its :class:`Front` (``front``)."""

    front: Front

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def app_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI's own handling (what :class:`Front` passes other requests to)."""
        await super().__call__(scope, receive, send)


_PAGE_SECURITY = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
}
_SSE_EXAMPLE = (
    'id: 0\ndata: {"conversation_id":"c-1","sequence":0,"kind":"start","text":"",'
    '"served_by":"agent-a","delta_count":0}\n\n'
    'id: 1\ndata: {"conversation_id":"c-1","sequence":1,"kind":"delta","text":"hello",'
    '"served_by":"agent-a","delta_count":0}\n\n'
    'id: 2\ndata: {"conversation_id":"c-1","sequence":2,"kind":"complete","text":"",'
    '"served_by":"agent-a","delta_count":1}\n\n'
    'event: done\ndata: {"conversation_id":"c-1","reply":"hello","served_by":"agent-a",'
    '"events":3}\n\n'
)


_TIMEOUT_HEADER = {
    "name": "X-Request-Timeout",
    "in": "header",
    "required": False,
    "schema": {"type": "number", "exclusiveMinimum": 0},
    "description": "The request's deadline in seconds (at most GATEWAY_REQUEST_TIMEOUT_SECONDS, "
    "the default); it is the agent call's deadline, and work whose deadline passed before "
    "it started is not sent to an agent (504).",
}


def _static(name: str) -> bytes:
    return (resources.files("ecsgrpc_apps.gateway") / "static" / name).read_bytes()


def _conversation_responses() -> dict[int | str, dict[str, Any]]:
    responses = error_responses(400, 413, 415, 422, 429, 502, 503, 504)
    responses[200] = {
        "model": ConversationReply,
        "description": "The reply: JSON, or with `Accept: text/event-stream` Server-Sent "
        "Events (one `data:` EventOut per agent event, then `event: done` with a DoneEvent, "
        "or `event: error` with an ErrorBody when the agent fails mid-stream).",
        "content": {"text/event-stream": {"schema": {"type": "string"}, "example": _SSE_EXAMPLE}},
    }
    return responses


def create_app(
    client: WorkflowClient,
    settings: GatewaySettings | None = None,
    *,
    registry: CollectorRegistry | None = None,
    lifecycle: Lifecycle | None = None,
    close_client: bool = True,
) -> GatewayApp:
    """The gateway app over ``client`` (whose channel should report to ``registry``).

    The lifespan starts the client's discovery and, when ``close_client``, closes
    it at shutdown. ``lifecycle`` is shared with a :class:`GatewayServer` so a
    SIGTERM drain turns ``/readyz`` off.
    """
    settings = settings or GatewaySettings()
    registry = REGISTRY if registry is None else registry
    metrics = gateway_metrics(registry)
    lifecycle = lifecycle or Lifecycle(metrics)
    conversations = Conversations(client, settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client.channel.get_state(try_to_connect=True)  # start discovery now, not on first call
        assert isinstance(app, GatewayApp)
        lag = LagMonitor(app.front.limiter, observe=app.front.overload.loop_lag.observe)
        lag.start()
        lifecycle.move(GatewayState.SERVING)
        try:
            yield
        finally:
            lag.stop()
            lifecycle.stop()
            if close_client:
                await client.aclose()

    app = GatewayApp(
        title="ecsgrpc API Gateway",
        version="1",
        summary="HTTP face of the Workflow Agents, balanced by ecsgrpc.",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry (HTTP server spans and metrics, global
        # providers; inert without the otel extra's SDK). No per-operation spans:
        # the balanced channel's call span is the HTTP span's child.
        telemetry={"operation_spans": False},
        docs_url="/docs" if settings.docs else None,
        redoc_url=None,
    )
    install_handlers(app)
    _add_routes(app, conversations, lifecycle, registry)
    app.add_middleware(RequestMetrics, metrics=metrics, paths=_PATHS)
    limiter = AdaptiveLimit(
        LimitConfig(
            max_limit=settings.max_concurrency,
            min_limit=min(settings.min_concurrency, settings.max_concurrency),
            initial_limit=min(32, settings.max_concurrency),
            tolerance=settings.latency_tolerance,
            adaptive=settings.adaptive_concurrency,
        )
    )
    app.front = Front(
        app.app_call,
        conversations=conversations,
        limiter=limiter,
        metrics=metrics,
        overload=overload_metrics(registry),
    )
    return app


def _add_routes(
    app: FastAPI,
    conversations: Conversations,
    lifecycle: Lifecycle,
    registry: CollectorRegistry,
) -> None:
    channel = conversations.client.channel

    @app.post(
        CONVERSATIONS_PATH,
        response_model=ConversationReply,
        responses=_conversation_responses(),
        summary="Run a conversation turn on a Workflow Agent",
        tags=["conversations"],
        openapi_extra={"parameters": [_TIMEOUT_HEADER]},
    )
    async def post_conversation(request: Request, body: ConversationIn) -> Response:
        # The gateway's Front serves this route (front.py); this declares it for
        # OpenAPI and serves it when the app is called without its Front.
        return await conversations.handle(request, body)

    @app.get("/healthz", response_model=Health, tags=["operations"], summary="Process is alive")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Readiness,
        tags=["operations"],
        summary="Ready: at least one agent is ready and the gateway is not draining",
        responses={503: {"model": Readiness, "description": "Not ready, or draining."}},
    )
    async def readyz() -> JSONResponse:
        ready = channel.ready_count
        status: Literal["ready", "not_ready", "draining"] = "not_ready"
        if lifecycle.state is GatewayState.DRAINING:
            status = "draining"
        elif lifecycle.serving and ready > 0:
            status = "ready"
        body = Readiness(status=status, ready_endpoints=ready, state=lifecycle.state.value)
        return JSONResponse(body.model_dump(), status_code=200 if status == "ready" else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics (client and gateway)",
        response_class=Response,
        responses={
            200: {
                "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                "description": "Prometheus text exposition format.",
            }
        },
    )
    async def prometheus() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/debug/endpoints",
        response_model=list[EndpointOut],
        tags=["operations"],
        summary="The balanced channel's agent endpoints",
    )
    async def debug_endpoints() -> list[EndpointOut]:
        return [EndpointOut(**status.to_dict()) for status in channel.endpoints()]

    _add_page(app)


def _add_page(app: FastAPI) -> None:
    files = {
        "/": ("index.html", "text/html; charset=utf-8"),
        "/app.js": ("app.js", "text/javascript; charset=utf-8"),
        "/app.css": ("app.css", "text/css; charset=utf-8"),
        "/favicon.svg": ("favicon.svg", "image/svg+xml"),
        "/favicon.ico": ("favicon.svg", "image/svg+xml"),
    }
    for path, (name, media_type) in files.items():
        app.add_api_route(
            path, _file_route(_static(name), media_type), methods=["GET"], include_in_schema=False
        )


def _file_route(content: bytes, media_type: str) -> Callable[[], Awaitable[Response]]:
    async def serve() -> Response:
        return Response(content, media_type=media_type, headers=_PAGE_SECURITY)

    return serve
