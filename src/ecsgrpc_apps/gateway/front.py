"""The gateway's front door: every HTTP request starts in :class:`Front`.

``POST /v1/conversations`` is served here directly, before FastAPI's
middleware chain and router (they cost about a third of the gateway's CPU per
conversation and gave nothing this route needs); every other request goes on
to the FastAPI app. For a conversation, in order:

1. the deadline: ``X-Request-Timeout`` (seconds, decimal) or
   ``GATEWAY_REQUEST_TIMEOUT_SECONDS``, whichever is smaller, counted from here;
2. admission: :class:`~ecsgrpc_apps.gateway.limiter.AdaptiveLimit` admits it
   or it is refused at once with 503 + ``Retry-After`` (reason
   ``concurrency``), before its body is read or parsed;
3. media type and size (415, 413), then the body is read and validated
   (400, 422) with the same error bodies as the FastAPI route;
4. work whose deadline passed before the agent call would start is dropped
   (504, reason ``deadline``): it is never sent to an agent;
5. the conversation runs (:class:`~ecsgrpc_apps.gateway.conversations.Conversations`),
   and leaves the limiter at its first event (SSE) or its reply (JSON).

Instrumentation that wants every request (tracing, access logs) wraps
:meth:`Front.__call__`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ecsgrpc.metrics import GatewayMetrics
from ecsgrpc_apps.gateway.conversations import CLIENT_CLOSED_REQUEST, Admission, Conversations
from ecsgrpc_apps.gateway.errors import ApiError, problems_from
from ecsgrpc_apps.gateway.instrument import OverloadMetrics
from ecsgrpc_apps.gateway.limiter import AdaptiveLimit
from ecsgrpc_apps.gateway.limits import BodyTooLarge, Disconnected, check_headers, read_body
from ecsgrpc_apps.gateway.models import ConversationIn
from ecsgrpc_apps.gateway.sse import EventStreamResponse
from ecsgrpc_apps.gateway.tracing import traced

__all__ = ["DEADLINE_HEADER", "Front", "parse_timeout"]

log = logging.getLogger(__name__)

DEADLINE_HEADER = "x-request-timeout"
CONVERSATIONS_PATH = "/v1/conversations"
_ROUTE = CONVERSATIONS_PATH


def parse_timeout(value: str | None, ceiling: float) -> float:
    """The request's timeout in seconds: ``value`` (``X-Request-Timeout``) capped at ``ceiling``.

    Raises ApiError(400) naming the header and the value when it is not a
    positive decimal number of seconds.
    """
    if value is None:
        return ceiling
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ApiError(
            400,
            "bad_request",
            f"X-Request-Timeout {value!r} is not a positive number of seconds",
        )
    return min(seconds, ceiling)


def _refusal(status: int, code: str, message: str, retry_after: str | None) -> tuple[bytes, list]:  # type: ignore[type-arg]
    body = json.dumps(
        {"error": {"code": code, "message": message, "status": status, "problems": []}},
        separators=(",", ":"),
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", retry_after.encode()))
    return body, headers


# Built once: a refusal must cost as little as possible (see docs/gateway.md).
_OVERLOADED = _refusal(
    503,
    "overloaded",
    "the gateway is at its concurrency limit; retry after the Retry-After seconds",
    "1",
)
# The same answer as raw HTTP/1.1, for refusals at the connection's door.
_OVERLOADED_HTTP = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    + b"".join(name + b": " + value + b"\r\n" for name, value in _OVERLOADED[1])
    + b"\r\n"
    + _OVERLOADED[0]
)


class Front:
    """The ASGI entry (see the module docstring); ``app`` serves all other requests.

    It is also the connections' :class:`~ecsgrpc_apps.gateway.connections.Door`:
    while the limit is reached, a conversation whose head arrives whole is
    refused from its raw bytes, before uvicorn parses it (the same 503, counted
    the same way, but neither traced nor access-logged).
    """

    request_line = b"POST " + _ROUTE.encode() + b" HTTP/1.1\r\n"

    def __init__(
        self,
        app: ASGIApp,
        *,
        conversations: Conversations,
        limiter: AdaptiveLimit,
        metrics: GatewayMetrics,
        overload: OverloadMetrics,
    ) -> None:
        self.app = app
        self.conversations = conversations
        self.limiter = limiter
        self.metrics = metrics
        self.overload = overload
        self._max_timeout = conversations.settings.request_timeout_seconds
        self._max_body = self.max_body_bytes = conversations.settings.max_body_bytes
        self._refused_concurrency = overload.refusals.labels("concurrency")
        self._refused_deadline = overload.refusals.labels("deadline")
        self._in_flight = metrics.in_flight.labels(_ROUTE)
        self._duration = metrics.duration.labels(_ROUTE, "POST")
        self._statuses: dict[int, Any] = {}
        self._passed = 0  # conversations the door let through in this turn of the loop
        overload.limit.set_function(lambda: limiter.limit)
        overload.working.set_function(lambda: limiter.in_flight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == _ROUTE and scope["method"] == "POST":
            await traced(self.conversation, _ROUTE, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def full(self) -> bool:
        """True while a new conversation would be refused (the limit is reached).

        Conversations the door let through in this turn of the event loop count
        too: they take their place under the limit only when their ASGI task
        runs, at the next turn, and without them every head that arrives in the
        same turn would see the same free places, go on to be parsed, and be
        refused after parsing instead (measured past saturation: a quarter of
        the refusals, at several times a door refusal's cost).
        """
        return self.limiter.in_flight + self._passed >= self.limiter.limit

    def passed(self) -> None:
        """A conversation went on past the door; it counts in :meth:`full` until the turn ends."""
        if not self._passed:
            asyncio.get_running_loop().call_soon(self._turn_ended)
        self._passed += 1

    def _turn_ended(self) -> None:
        # Runs before the tasks of this turn's conversations (scheduled after it), which
        # then hold their places under the limit themselves.
        self._passed = 0

    def refuse(self) -> bytes:
        """Count a refusal at the door; the raw 503 ``overloaded`` answer (kept-alive)."""
        self.limiter.refused()
        self._refused_concurrency.inc()
        self._count(503, time.perf_counter())
        return _OVERLOADED_HTTP

    def _count(self, status: int, started: float) -> None:
        counter = self._statuses.get(status)
        if counter is None:
            counter = self._statuses[status] = self.metrics.requests.labels(
                _ROUTE, "POST", str(status)
            )
        counter.inc()
        self._duration.observe(time.perf_counter() - started)

    async def conversation(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ``POST /v1/conversations`` (see the module docstring)."""
        started = time.perf_counter()
        if not self.limiter.try_acquire():
            self._refused_concurrency.inc()
            body, headers = _OVERLOADED
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            self._count(503, started)
            return
        admission = Admission(self.limiter, time.monotonic())
        self._in_flight.inc()
        status = 500
        try:
            status = await self._admitted(scope, receive, send, admission)
        except Exception:
            log.exception("unexpected error on POST %s", _ROUTE)
            await ApiError(500, "internal", "internal error (logged by the gateway)").response()(
                scope, receive, send
            )
            status = 500
        finally:
            admission.release()
            self._in_flight.dec()
            self._count(status, started)

    async def _admitted(
        self, scope: Scope, receive: Receive, send: Send, admission: Admission
    ) -> int:
        headers = Headers(scope=scope)
        try:
            timeout = parse_timeout(headers.get(DEADLINE_HEADER), self._max_timeout)
            deadline = admission.admitted_at + timeout
            check_headers(headers, self._max_body)
            raw = await read_body(receive, self._max_body)
            body = parse_conversation(raw)
            if time.monotonic() >= deadline:
                self._refused_deadline.inc()
                raise _expired(timeout)
            response = await self.conversations.run(
                body,
                sse="text/event-stream" in headers.get("accept", "").lower(),
                receive=receive,
                deadline=deadline,
                admission=admission,
            )
        except BodyTooLarge as err:
            await err.drain(receive)
            await err.response()(scope, receive, send)
            return err.status
        except ApiError as err:
            await err.response()(scope, receive, send)
            return err.status
        except Disconnected:
            return CLIENT_CLOSED_REQUEST
        if response is None:
            return CLIENT_CLOSED_REQUEST
        await response(scope, receive, send)
        if isinstance(response, EventStreamResponse) and response.client_gone:
            return CLIENT_CLOSED_REQUEST
        return response.status_code


def _expired(timeout: float) -> ApiError:
    return ApiError(
        504,
        "deadline_exceeded",
        f"the request's deadline ({timeout:g}s) passed before it could start; "
        "it was not sent to an agent",
    )


def parse_conversation(raw: bytes) -> ConversationIn:
    """The validated body, or ApiError: 400 ``bad_json`` / 422 ``invalid_request``.

    The messages are those of the FastAPI route (``body.messages.0.role: ...``),
    without framework wording.
    """
    if not raw.strip():
        raise ApiError(
            422,
            "invalid_request",
            "invalid request: body: a JSON object is required",
            problems=problems_from([{"type": "missing", "loc": (), "msg": "missing"}]),
        )
    try:
        return ConversationIn.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(err.get("type") == "json_invalid" for err in errors):
            raise _bad_json(raw) from None
        problems = problems_from(errors)
        summary = "; ".join(f"{p.location}: {p.message}" for p in problems)
        raise ApiError(
            422, "invalid_request", f"invalid request: {summary}", problems=problems
        ) from None


def _bad_json(raw: bytes) -> ApiError:
    """400 naming why ``raw`` is not JSON: bad UTF-8 (the byte) or the character position."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ApiError(
            400,
            "bad_json",
            f"the body is not valid UTF-8: byte 0x{raw[exc.start]:02x} at position {exc.start}",
        )
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return ApiError(
            400, "bad_json", f"the body is not valid JSON: {exc.msg} at character {exc.pos}"
        )
    return ApiError(400, "bad_json", "the body is not valid JSON")
