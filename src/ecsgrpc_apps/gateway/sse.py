"""Server-Sent Events: framing, and a streaming response that stops on disconnect.

Wire format (https://html.spec.whatwg.org/multipage/server-sent-events.html):
each agent event is ``id: SEQUENCE`` + ``data: {json}``; a successful stream
ends with ``event: done``, a failed one with ``event: error`` (an ErrorBody).

While the agent is silent, a comment line (``: keep-alive``) is sent every
``heartbeat_seconds`` (default 15): SSE clients ignore comments, and proxies
and load balancers that close idle connections (the ALB's default idle
timeout is 60 s, nginx's ``proxy_read_timeout`` 60 s) see traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = [
    "HEARTBEAT",
    "ClientGone",
    "DisconnectWatcher",
    "EventStreamResponse",
    "LastFrame",
    "sse_frame",
]

HEARTBEAT = b": keep-alive\n\n"

_T = TypeVar("_T")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Tell nginx-like proxies not to buffer the stream.
    (b"x-accel-buffering", b"no"),
]


class LastFrame(bytes):
    """A frame after which the stream ends: sent with the end of the body, in one write."""


def sse_frame(
    data: str, *, event: str | None = None, event_id: str | None = None, last: bool = False
) -> bytes:
    """One SSE frame; ``data`` may span lines (each becomes a ``data:`` line).

    ``last``: the stream's final frame (a :class:`LastFrame`).
    """
    lines = []
    if event is not None:
        lines.append(f"event: {event}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in (data.split("\n") if data else [""]))
    frame = ("\n".join(lines) + "\n\n").encode()
    return LastFrame(frame) if last else frame


class ClientGone(Exception):
    """The HTTP client disconnected; the work done for it was cancelled."""


class DisconnectWatcher:
    """Runs steps of a request's work and cancels the step when the client disconnects.

    Created by the route after the body was read; ``receive`` then yields only
    ``http.disconnect``. Call :meth:`close` when the request ends.

    A step runs in the caller's own task (no task per step): one watching task
    waits for the disconnect and, only while a step runs, cancels the caller's
    task, which :meth:`run` turns into ClientGone. A cancellation of the caller
    from elsewhere stays a cancellation.
    """

    __slots__ = ("_cancelled", "_gone", "_owner", "_receive", "_running", "_task")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[None] | None = None
        self._owner: asyncio.Task[object] | None = None
        self._running = False
        self._gone = False
        self._cancelled = False  # this watcher cancelled the owner

    async def _wait(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self._gone = True
        if self._running and self._owner is not None:
            self._cancelled = True
            self._owner.cancel()

    async def run(self, step: Awaitable[_T]) -> _T:
        """``await step`` unless the client leaves first (then cancel it, raise ClientGone)."""
        if self._task is None:
            self._owner = asyncio.current_task()
            self._task = asyncio.ensure_future(self._wait())
        if self._gone:
            if asyncio.iscoroutine(step):
                step.close()
            raise ClientGone
        self._running = True
        try:
            return await step
        except asyncio.CancelledError:
            owner = self._owner
            if not self._cancelled or owner is None or owner.uncancel() > 0:
                raise  # cancelled from elsewhere (too)
            raise ClientGone from None
        finally:
            self._running = False

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class EventStreamResponse(Response):
    """A 200 ``text/event-stream`` that sends ``frames`` as they come.

    When the client disconnects the iteration of ``frames`` is cancelled (so
    the upstream call behind it is cancelled too) and ``client_gone`` is set.
    The response owns ``watcher`` and closes it.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        frames: AsyncIterator[bytes],
        watcher: DisconnectWatcher,
        *,
        heartbeat_seconds: float = 15.0,
    ) -> None:
        # Response.__init__ would add a Content-Length; this response has none.
        self.frames = frames
        self.watcher = watcher
        self.heartbeat_seconds = heartbeat_seconds
        self.status_code = 200
        self.background = None
        self.raw_headers = list(SSE_HEADERS)
        self.client_gone = False
        self._last_sent = 0.0
        self._sending = False

    async def _pump(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        ended = False
        async for frame in self.frames:
            # A LastFrame ends the body in the same message (one write, not two).
            ended = type(frame) is LastFrame
            self._sending = True
            await send({"type": "http.response.body", "body": frame, "more_body": not ended})
            self._sending = ended  # no heartbeat after the last message
            self._last_sent = loop.time()
        if not ended:
            self._sending = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _heartbeats(self, send: Send) -> None:
        """A comment whenever nothing was sent for ``heartbeat_seconds``."""
        loop = asyncio.get_running_loop()
        while True:
            due = self._last_sent + self.heartbeat_seconds
            if loop.time() < due or self._sending:
                await asyncio.sleep(max(due - loop.time(), 0.01))
                continue
            self._sending = True
            try:
                await send({"type": "http.response.body", "body": HEARTBEAT, "more_body": True})
            finally:
                self._sending = False
            self._last_sent = loop.time()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        loop = asyncio.get_running_loop()
        self._last_sent = loop.time()
        beats: list[asyncio.Task[None]] = []
        # A timer, not a task, until the first heartbeat is due: short streams pay ~nothing.
        timer = (
            loop.call_later(
                self.heartbeat_seconds,
                lambda: beats.append(loop.create_task(self._heartbeats(send))),
            )
            if self.heartbeat_seconds > 0
            else None
        )
        try:
            await self.watcher.run(self._pump(send))
        except ClientGone:
            self.client_gone = True
        finally:
            if timer is not None:
                timer.cancel()
            for task in beats:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.watcher.close()
