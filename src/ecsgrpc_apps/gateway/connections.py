"""HTTP connection limits under uvicorn: what a hostile client cannot hold.

:func:`guarded_protocol` gives uvicorn's HTTP/1.1 protocol (its httptools one when
httptools is installed, else its h11 one; ``GATEWAY_HTTP_PARSER``) with, per
connection:

* a **head size** limit (``GATEWAY_MAX_HEAD_BYTES``) and a **header count**
  limit (``GATEWAY_MAX_HEADER_COUNT``), both checked on the raw bytes before
  the parser sees them, however the head arrives (one read or a byte at a
  time): 431 and close. (h11's own limit only applies to a head still
  incomplete after a read; httptools has none.)
* a **request-head timeout** (``GATEWAY_HEAD_TIMEOUT_SECONDS``) from the
  connection's start, or from the first byte of a later request on a kept-alive
  connection, to the end of the head: 408 and close (slowloris). Each
  connection's timeout is drawn between 1 and 1 + :data:`HEAD_TIMEOUT_SPREAD`
  times the setting, so connections opened together (a slowloris attacker's,
  who reconnects as soon as it is closed) do not all time out in one batch of
  the event loop: 200 of them cost about 75 ms of CPU at once, which every
  request in flight would wait for;
* the **idle keep-alive timeout** (``GATEWAY_KEEP_ALIVE_SECONDS``, uvicorn's);
* a **cap on open connections** (``GATEWAY_MAX_CONNECTIONS``, kept below the
  open-files limit): a connection above it gets 503 and is closed;
* malformed HTTP gets the JSON error body (400 ``bad_request``), not
  uvicorn's plain text;
* **refusal at the door**: while the gateway's :class:`Door` says it is full
  (its adaptive concurrency limit is reached), a ``POST /v1/conversations``
  whose whole head arrived in one read is answered 503 ``overloaded`` from
  the raw bytes: the parser never sees it, no ASGI task is made, and its body
  (``Content-Length``, up to the door's body limit) is dropped as it comes,
  so the kept-alive connection serves the client's next request. A refusal
  then costs a few tens of microseconds instead of a parsed, routed request
  (what overload's goodput depends on, docs/gateway.md). Anything unusual
  (chunked, ``Expect``, ``Connection``, a split head, a client that does not
  read its answers) goes the normal way, where Front refuses it after parsing.

Also here: :func:`raise_open_files_limit` (soft to hard at start) and
:func:`rate_limited_accept_errors` (the event loop's "socket.accept() out of
system resource" at most once a second instead of thousands of tracebacks).
Head lines must end in CRLF, as RFC 9112 says a sender must.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ecsgrpc.errors import ConfigError
from ecsgrpc_apps.gateway.cork import HeadCork
from ecsgrpc_apps.gateway.instrument import OverloadMetrics

__all__ = [
    "ConnectionLimits",
    "Door",
    "guarded_protocol",
    "http_parser",
    "raise_open_files_limit",
    "rate_limited_accept_errors",
    "raw_error",
]

log = logging.getLogger(__name__)

# A connection's head timeout is drawn in [1, 1 + spread] x the setting (module docstring).
HEAD_TIMEOUT_SPREAD = 0.25

# Descriptors kept for everything that is not a client connection (agents'
# channels, DNS, logs, the listener, ...).
FD_RESERVE = 128


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 8192
    max_header_count: int = 100
    max_head_bytes: int = 16 * 1024
    head_timeout_seconds: float = 10.0


class Door(Protocol):
    """Who decides, before parsing, that a new conversation is refused (the gateway's Front)."""

    #: The request line the door answers: ``b"POST /v1/conversations HTTP/1.1\\r\\n"``.
    request_line: bytes
    #: Bodies larger than this are not dropped at the door (the normal path refuses them).
    max_body_bytes: int

    def full(self) -> bool:
        """True while a new conversation would be refused (cheap: called per request)."""

    def passed(self) -> None:
        """A conversation's head went on to be parsed while the door was not full."""

    def refuse(self) -> bytes:
        """Count one refusal and return the whole HTTP/1.1 answer (kept-alive)."""


# How long a connection refused mid-head drops what the client still sends.
LINGER_SECONDS = 2.0

# A refused request's answer is only written while the client reads its answers.
_DOOR_WRITE_BUFFER = 64 * 1024
_DOOR_UNUSUAL = (b"\r\ntransfer-encoding:", b"\r\nexpect:", b"\r\nconnection:")


def raw_error(status: int, reason: str, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 error answer with the JSON ErrorBody, closing the connection."""
    body = json.dumps(
        {"error": {"code": code, "message": message, "status": status, "problems": []}},
        separators=(",", ":"),
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n"
    )
    if status == 503:
        head += "retry-after: 1\r\n"
    return head.encode() + b"\r\n" + body


class _Guard:
    """The limits of the module docstring, over either of uvicorn's HTTP/1.1 protocols.

    A mixin: the concrete classes below put it before uvicorn's protocol and say
    where their parser is (:meth:`_awaiting_head`, :meth:`_door_may_answer`).
    """

    limits: ConnectionLimits = ConnectionLimits()
    metrics: OverloadMetrics | None = None
    door: Door | None = None
    _counted: set[Any] | None = None
    # uvicorn's protocol attributes this mixin uses (set by the protocol).
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    connections: set[Any]
    server_state: Any
    timeout_keep_alive: int
    timeout_keep_alive_task: asyncio.TimerHandle | None
    timeout_keep_alive_handler: Callable[[], None]
    _unset_keepalive_if_required: Callable[[], None]
    cycle: Any

    def _awaiting_head(self) -> bool:
        """True while the parser waits for (the rest of) a request head, not a body."""
        raise NotImplementedError

    def _door_may_answer(self) -> bool:
        """True when an answer written now is the next one (nothing buffered or pending)."""
        raise NotImplementedError

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._cork = HeadCork(self.transport, self.loop)
        cls = type(self)
        if self.metrics is not None and cls._counted is not self.connections:
            cls._counted = open_now = self.connections  # the server's set of connections
            self.metrics.connections.set_function(lambda: len(open_now))
        self._head_bytes = 0
        self._head_lines = 0
        self._tail = b""
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._drop = 0  # bytes of a request refused at the door still to come
        if len(self.connections) > self.limits.max_connections:
            self._refuse(
                "connections",
                raw_error(
                    503,
                    "Service Unavailable",
                    "too_many_connections",
                    f"the gateway has {self.limits.max_connections} connections open, its limit",
                ),
            )
            return
        self._start_head_timer()

    def _start_head_timer(self) -> None:
        spread = HEAD_TIMEOUT_SPREAD * random.random()  # noqa: S311 (spreading load, not a secret)
        timeout = self.limits.head_timeout_seconds * (1 + spread)
        self._head_timer = self.loop.call_later(timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._awaiting_head() and not self.transport.is_closing():
            seconds = self.limits.head_timeout_seconds
            self._refuse(
                "head_timeout",
                raw_error(
                    408,
                    "Request Timeout",
                    "head_timeout",
                    f"the request's line and headers did not arrive within {seconds:g}s",
                ),
            )

    def _refuse(self, reason: str, answer: bytes, *, linger: bool = False) -> None:
        """Count the refusal, write ``answer`` and close.

        ``linger``: for a client that may still be sending (its head was too
        large): end our side (FIN after the answer) and drop what still comes
        until it closes, at most :data:`LINGER_SECONDS`; a close with unread
        bytes would send a reset that can destroy the answer before it is read.
        """
        self._refused = True
        self._stop_head_timer()
        if self.metrics is not None:
            self.metrics.refusals.labels(reason).inc()
        if self.transport.is_closing():
            return
        self._cork.flush()
        self.transport.write(answer)
        if linger and self.transport.can_write_eof():
            self.transport.write_eof()
            self._head_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        while True:
            if self._refused:
                return
            if self._drop:
                if len(data) <= self._drop:
                    self._drop -= len(data)
                    return
                data = data[self._drop :]
                self._drop = 0
            if not self._awaiting_head():
                break
            door = self.door
            if door is not None and self._head_bytes == 0:
                if door.full():
                    rest = self._refuse_at_door(door, data)
                    if rest is not None:
                        if not rest:
                            return
                        data = rest  # a pipelined request follows
                        continue
                elif data.startswith(door.request_line):
                    door.passed()  # so the next heads of this turn count it
            if not self._check_head(data):
                return
            break
        super().data_received(data)  # type: ignore[misc]
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:
            # A new request: its answer's head joins the body's first write.
            cycle.transport = self._cork
            self._cork.arm()

    def _refuse_at_door(self, door: Door, data: bytes) -> bytes | None:
        """Answer a conversation from its raw head; what follows its body, or None to parse it."""
        if not data.startswith(door.request_line):
            return None
        end = data.find(b"\r\n\r\n")
        limits = self.limits
        if end < 0 or end + 4 > limits.max_head_bytes or not self._door_may_answer():
            return None
        head = data[:end].lower()
        if head.count(b"\r\n") > limits.max_header_count or any(
            name in head for name in _DOOR_UNUSUAL
        ):
            return None
        at = head.find(b"\r\ncontent-length:")
        if at < 0 or head.find(b"\r\ncontent-length:", at + 1) >= 0:
            return None
        stop = head.find(b"\r\n", at + 2)
        value = (head[at + 17 : stop] if stop > 0 else head[at + 17 :]).strip()
        if not value.isdigit() or int(value) > door.max_body_bytes:
            return None
        if self.transport.is_closing() or (
            self.transport.get_write_buffer_size() > _DOOR_WRITE_BUFFER
        ):
            return None
        self._unset_keepalive_if_required()
        self._cork.write(door.refuse())  # after anything still held
        self.server_state.total_requests += 1
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )
        body = data[end + 4 :]
        length = int(value)
        if len(body) < length:
            self._drop = length - len(body)
            return b""
        return body[length:]

    def _check_head(self, data: bytes) -> bool:
        """Count a head's bytes and lines as they come; False when it was refused."""
        if self._head_timer is None:  # first byte of a later request on this connection
            self._start_head_timer()
        limits = self.limits
        window = self._tail + data
        end = window.find(b"\r\n\r\n")
        part = data if end < 0 else data[: max(end + 4 - len(self._tail), 0)]
        self._head_bytes += len(part)
        self._head_lines += part.count(b"\n")
        headers = self._head_lines - (2 if end >= 0 else 1)
        if self._head_bytes > limits.max_head_bytes:
            problem = f"the request head is over the limit of {limits.max_head_bytes} bytes"
            return self._too_large("head_too_large", problem)
        if headers > limits.max_header_count:
            problem = f"the request has over {limits.max_header_count} header fields, its limit"
            return self._too_large("too_many_headers", problem)
        if end >= 0:
            self._stop_head_timer()
            self._head_bytes = self._head_lines = 0
            self._tail = b""
        else:
            self._tail = window[-3:]
        return True

    def _too_large(self, reason: str, message: str) -> bool:
        self._refuse(
            reason,
            raw_error(431, "Request Header Fields Too Large", "header_fields_too_large", message),
            linger=True,
        )
        return False

    def on_response_complete(self) -> None:
        self._head_bytes = self._head_lines = 0
        self._tail = b""
        super().on_response_complete()  # type: ignore[misc]

    def send_400_response(self, msg: str) -> None:
        self._refused = True
        self._stop_head_timer()
        if not self.transport.is_closing():
            self._cork.flush()
            self.transport.write(
                raw_error(400, "Bad Request", "bad_request", "the request is not valid HTTP/1.1")
            )
            self.transport.close()


class _GuardedH11(_Guard, H11Protocol):
    """uvicorn's h11 protocol with the limits."""

    def _awaiting_head(self) -> bool:
        # IDLE: before a request's head is complete (h11 buffers a partial one).
        return self.conn.their_state is h11.IDLE

    def _door_may_answer(self) -> bool:
        # IDLE comes back only after the last answer; nothing pipelined is buffered.
        return not self.conn.trailing_data[0]


def _httptools_protocol() -> type[Any]:
    """uvicorn's httptools protocol with the limits (ImportError without httptools)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class _GuardedHttpTools(_Guard, HttpToolsProtocol):
        """The parser is told of each message's start, head end and end; the body
        phase is from head end to message end."""

        _in_body = False

        def on_headers_complete(self) -> None:
            self._in_body = True
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_body = False
            super().on_message_complete()

        def _awaiting_head(self) -> bool:
            return not self._in_body

        def _door_may_answer(self) -> bool:
            cycle = self.cycle
            return (cycle is None or cycle.response_complete) and not self.pipeline

    return _GuardedHttpTools


def http_parser(choice: str) -> str:
    """The parser for ``GATEWAY_HTTP_PARSER`` (``auto``, ``h11``, ``httptools``).

    ``auto`` is httptools when it is installed (the ``httptools`` extra), else
    h11. Raises ConfigError for ``httptools`` when it is not installed.
    """
    if choice == "h11":
        return "h11"
    try:
        import httptools  # noqa: F401
    except ImportError:
        if choice == "httptools":
            raise ConfigError(
                "GATEWAY_HTTP_PARSER='httptools': httptools is not installed "
                "(pip install 'ecsgrpc[httptools]')"
            ) from None
        return "h11"
    return "httptools"


def guarded_protocol(
    limits: ConnectionLimits,
    metrics: OverloadMetrics | None = None,
    door: Door | None = None,
    *,
    parser: str = "h11",
) -> type[Any]:
    """uvicorn's ``http`` protocol class with these limits (pass as ``Config(http=...)``).

    ``door``: refuse conversations at the door while it is full (module docstring).
    ``parser``: ``h11`` or ``httptools`` (see :func:`http_parser`).
    """
    base: type[Any] = _httptools_protocol() if parser == "httptools" else _GuardedH11
    return type(
        f"Guarded{base.__name__[8:]}Protocol",
        (base,),
        {"limits": limits, "metrics": metrics, "door": door},
    )


def raise_open_files_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard one; return ``(soft, hard)`` after.

    With the common soft limit of 1,024 a thousand open SSE streams would
    exhaust the descriptors; the hard limit is usually far higher.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, exc)
        return soft, hard
    return target, hard


def connection_cap(configured: int, open_files_soft: int) -> int:
    """The connection cap: ``configured``, kept :data:`FD_RESERVE` below the open-files limit."""
    return max(1, min(configured, open_files_soft - FD_RESERVE))


def rate_limited_accept_errors(
    loop: asyncio.AbstractEventLoop,
    *,
    every: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Log the loop's accept errors (EMFILE, ENFILE, ...) at most once per ``every`` seconds.

    Other exceptions go to the handler that was there before (or the default).
    """
    previous = loop.get_exception_handler()
    last = -every
    suppressed = 0

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        nonlocal last, suppressed
        message = str(context.get("message", ""))
        if "socket.accept()" not in message:
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = clock()
        if now - last < every:
            suppressed += 1
            return
        exc = context.get("exception")
        log.error("%s: %s (%d more like it since the last line)", message, exc, suppressed)
        last = now
        suppressed = 0

    loop.set_exception_handler(handler)
