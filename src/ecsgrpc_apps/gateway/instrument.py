"""Request metrics as a pure ASGI middleware (it also sees 413/415 and 500 answers).

Routes are labelled by their template (``/v1/conversations``), never by the
raw path, so a scan of random URLs cannot blow up the label set.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecsgrpc.metrics import GatewayMetrics

__all__ = ["OverloadMetrics", "RequestMetrics", "overload_metrics"]


class RequestMetrics:
    """Counts and times every HTTP request into :class:`GatewayMetrics`."""

    def __init__(self, app: ASGIApp, *, metrics: GatewayMetrics, paths: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.paths = paths

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
        return scope["path"] if scope["path"] in self.paths else "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering
        label = scope["path"] if scope["path"] in self.paths else "other"
        in_flight = self.metrics.in_flight.labels(label)
        in_flight.inc()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            in_flight.dec()
            route, method = self._route(scope), scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.duration.labels(route, method).observe(time.perf_counter() - started)


# uvloop's timers count whole milliseconds: the first bucket holds a loop with time to spare.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class OverloadMetrics:
    """What the gateway refused and why, and its limits (``ecsgrpc_gateway_*``).

    ``refusals`` reasons: ``concurrency`` (503, the adaptive limit), ``deadline``
    (504, expired before it started), ``connections`` (503, the connection
    cap), ``head_too_large`` / ``too_many_headers`` (431), ``head_timeout`` (408).

    ``loop_lag``: how late the event loop ran a timer, sampled every 20 ms
    (:class:`~ecsgrpc_apps.gateway.limiter.LagMonitor`): near zero while the
    gateway's core has time to spare, milliseconds when it is saturated, and a
    sample as long as the stall when something blocks the loop.
    """

    refusals: Counter
    limit: Gauge
    working: Gauge
    connections: Gauge
    loop_lag: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> OverloadMetrics:
        return cls(
            refusals=Counter(
                "ecsgrpc_gateway_refusals_total",
                "Requests and connections refused by the gateway itself, by reason.",
                ["reason"],
                registry=registry,
            ),
            limit=Gauge(
                "ecsgrpc_gateway_concurrency_limit",
                "The adaptive concurrency limit now.",
                registry=registry,
            ),
            working=Gauge(
                "ecsgrpc_gateway_conversations_working",
                "Conversations in their working phase (counted against the limit).",
                registry=registry,
            ),
            connections=Gauge(
                "ecsgrpc_gateway_connections",
                "Open HTTP connections.",
                registry=registry,
            ),
            loop_lag=Histogram(
                "ecsgrpc_gateway_event_loop_lag_seconds",
                "How late the event loop ran a timer (sampled every 20 ms): CPU saturation "
                "or a blocked loop.",
                buckets=LAG_BUCKETS,
                registry=registry,
            ),
        )


_overload: weakref.WeakKeyDictionary[CollectorRegistry, OverloadMetrics] = (
    weakref.WeakKeyDictionary()
)


def overload_metrics(registry: CollectorRegistry) -> OverloadMetrics:
    """The gateway's overload instruments on ``registry`` (the same ones on every call)."""
    found = _overload.get(registry)
    if found is None:
        found = _overload[registry] = OverloadMetrics.create(registry)
    return found
