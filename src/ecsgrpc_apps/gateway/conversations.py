"""``POST /v1/conversations``: one conversation through the balanced channel.

The first agent event is awaited before answering, so a call that fails
before any output gets a real HTTP status (503, 504, ...). After it, an SSE
answer is committed to 200 and a failure becomes an ``event: error`` frame.
A client that disconnects cancels the upstream call at once.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive

from ecsgrpc.errors import EcsGrpcError, StreamInterrupted
from ecsgrpc.metrics import GatewayMetrics
from ecsgrpc_apps.gateway.errors import ApiError, from_grpc
from ecsgrpc_apps.gateway.limiter import AdaptiveLimit
from ecsgrpc_apps.gateway.models import ConversationIn, ConversationReply, DoneEvent, EventOut
from ecsgrpc_apps.gateway.settings import GatewaySettings
from ecsgrpc_apps.gateway.sse import ClientGone, DisconnectWatcher, EventStreamResponse, sse_frame
from ecsgrpc_apps.workflow import pb2, workflow_stub
from ecsgrpc_apps.workflow.client import WorkflowClient

__all__ = [
    "CLIENT_CLOSED_REQUEST",
    "Admission",
    "Conversations",
    "ReplyAssembler",
    "event_out",
    "wants_sse",
]

log = logging.getLogger(__name__)

# nginx's convention for "the client closed the connection first" (metrics only).
CLIENT_CLOSED_REQUEST = 499

_KINDS = {
    pb2.ConversationEvent.KIND_START: "start",
    pb2.ConversationEvent.KIND_DELTA: "delta",
    pb2.ConversationEvent.KIND_COMPLETE: "complete",
}


def wants_sse(accept: str | None) -> bool:
    """True when the client accepts ``text/event-stream``."""
    return "text/event-stream" in (accept or "").lower()


def event_out(event: pb2.ConversationEvent) -> EventOut:
    return EventOut(
        conversation_id=event.conversation_id,
        sequence=event.sequence,
        kind=_KINDS.get(event.kind, "unspecified"),
        text=event.text,
        served_by=event.served_by,
        delta_count=event.delta_count,
    )


@dataclass
class ReplyAssembler:
    """Builds the reply from the events seen so far (DELTA texts in order).

    ``keep``: the most characters kept (None: all). Past it the texts are
    dropped (``overflow``): an SSE stream's client has them from the delta
    frames, and a slow client must not make the gateway hold a long reply.
    """

    conversation_id: str
    keep: int | None = None
    parts: list[str] = field(default_factory=list)
    served_by: str = ""
    events: int = 0
    overflow: bool = False
    _chars: int = 0

    def add(self, event: pb2.ConversationEvent) -> None:
        self.events += 1
        self.served_by = event.served_by or self.served_by
        if event.kind == pb2.ConversationEvent.KIND_DELTA and not self.overflow:
            self._chars += len(event.text)
            if self.keep is not None and self._chars > self.keep:
                self.overflow = True
                self.parts.clear()
            else:
                self.parts.append(event.text)

    def restart(self) -> None:
        """Forget a cut attempt's events (a restart starts over)."""
        self.parts.clear()
        self.events = 0
        self.overflow = False
        self._chars = 0

    def done(self) -> DoneEvent:
        """The ``event: done`` data: the reply, or None past ``keep``."""
        return DoneEvent(
            conversation_id=self.conversation_id,
            reply=None if self.overflow else "".join(self.parts),
            served_by=self.served_by,
            events=self.events,
        )

    def reply(self) -> ConversationReply:
        return ConversationReply(
            conversation_id=self.conversation_id,
            reply="".join(self.parts),
            served_by=self.served_by,
            events=self.events,
        )

    def reply_json(self) -> bytes:
        """:meth:`reply` as the JSON answer's body, without building the model."""
        return _json(
            {
                "conversation_id": self.conversation_id,
                "reply": "".join(self.parts),
                "served_by": self.served_by,
                "events": self.events,
            }
        ).encode()


class Restart:
    """Attempts of one conversation: ``again()`` opens the next upstream call."""

    def __init__(
        self,
        open_call: Callable[[], AsyncIterator[pb2.ConversationEvent]],
        metrics: GatewayMetrics,
    ) -> None:
        self._open = open_call
        self._metrics = metrics
        self.attempt = 0

    def again(self, mode: str = "") -> AsyncIterator[pb2.ConversationEvent]:
        self.attempt += 1
        if self.attempt > 1:
            self._metrics.restarts.labels(mode).inc()
        return self._open()

    def reset_body(self, exc: Exception) -> dict[str, object]:
        """The ``event: reset`` frame: discard what was shown; a new attempt follows."""
        return {"attempt": self.attempt + 1, "reason": str(exc)}


def _dump(model: EventOut | DoneEvent | ConversationReply) -> str:
    return _json(model.model_dump(mode="json"))


# The wire form of every answer body: compact, UTF-8 as is (what JSONResponse writes).
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _event_json(event: pb2.ConversationEvent) -> str:
    """:func:`event_out` as JSON, without building the model (one per SSE frame)."""
    return _json(
        {
            "conversation_id": event.conversation_id,
            "sequence": event.sequence,
            "kind": _KINDS.get(event.kind, "unspecified"),
            "text": event.text,
            "served_by": event.served_by,
            "delta_count": event.delta_count,
        }
    )


_UPSTREAM_ERRORS = (grpc.aio.AioRpcError, EcsGrpcError)


@dataclass(frozen=True)
class Conversations:
    """Runs conversations for the route; safe for any number of concurrent requests."""

    client: WorkflowClient
    settings: GatewaySettings
    metrics: GatewayMetrics
    _stub: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_stub", workflow_stub(self.client.channel))

    def _error(self, exc: Exception) -> ApiError:
        """The HTTP error for an upstream failure (counted by gRPC code)."""
        if isinstance(exc, grpc.aio.AioRpcError):
            err = from_grpc(exc)
            self.metrics.upstream_errors.labels(exc.code().name).inc()
        else:
            err = ApiError(502, "upstream_error", str(exc))
            self.metrics.upstream_errors.labels("UNKNOWN").inc()
        return err

    async def _upstream(
        self, request: pb2.ConversationRequest, deadline: float
    ) -> AsyncIterator[pb2.ConversationEvent]:
        """The agent's events, within the request's ``deadline`` (monotonic).

        Waits at most ``endpoint_wait_seconds`` for a ready agent, then calls
        with ``wait_for_ready=False``: when every agent fails or is ejected
        mid-call, the answer is a quick 503, not a wait until the deadline.
        """
        channel = self.client.channel
        if channel.ready_count == 0:
            wait = min(self.settings.endpoint_wait_seconds, deadline - time.monotonic())
            await channel.channel_ready(timeout=max(wait, 0.001))
        left = deadline - time.monotonic()
        if left <= 0:
            raise ApiError(
                504,
                "deadline_exceeded",
                "the request's deadline passed while it waited for an agent; "
                "it was not sent to one",
            )
        call = self._stub.ProcessConversation(request, timeout=left, wait_for_ready=False)
        try:
            async for event in call:
                yield event
        finally:
            call.cancel()

    async def _first(
        self, events: AsyncIterator[pb2.ConversationEvent]
    ) -> pb2.ConversationEvent | None:
        try:
            return await self._first_raw(events)
        except _UPSTREAM_ERRORS as exc:
            raise self._error(exc) from None

    @staticmethod
    async def _first_raw(
        events: AsyncIterator[pb2.ConversationEvent],
    ) -> pb2.ConversationEvent | None:
        try:
            return await anext(events)
        except StopAsyncIteration:
            return None

    def _may_restart(self, exc: Exception, attempt: int) -> bool:
        """A stream cut after output by a dead agent may be restarted once."""
        return (
            self.settings.restart_interrupted
            and attempt == 1
            and isinstance(exc, StreamInterrupted)
            and exc.code() is grpc.StatusCode.UNAVAILABLE
        )

    async def _frames(
        self,
        first: pb2.ConversationEvent | None,
        events: AsyncIterator[pb2.ConversationEvent],
        assembler: ReplyAssembler,
        restart: Restart,
    ) -> AsyncIterator[bytes]:
        try:
            while True:
                try:
                    if first is not None:
                        assembler.add(first)
                        yield sse_frame(_event_json(first), event_id=str(first.sequence))
                        async for event in events:
                            assembler.add(event)
                            yield sse_frame(_event_json(event), event_id=str(event.sequence))
                    break
                except _UPSTREAM_ERRORS as exc:
                    if not self._may_restart(exc, restart.attempt):
                        raise
                    yield sse_frame(json.dumps(restart.reset_body(exc)), event="reset")
                    assembler.restart()
                    events = restart.again("sse")
                    first = await self._first_raw(events)
        except _UPSTREAM_ERRORS as exc:
            err = self._error(exc)
            log.warning(
                "stream of %s failed after %d events: %s",
                assembler.conversation_id,
                assembler.events,
                err.message,
            )
            body = err.body().model_dump(mode="json")
            yield sse_frame(json.dumps(body, separators=(",", ":")), event="error", last=True)
            return
        yield sse_frame(_dump(assembler.done()), event="done", last=True)

    async def _collect(
        self,
        first: pb2.ConversationEvent | None,
        events: AsyncIterator[pb2.ConversationEvent],
        assembler: ReplyAssembler,
        restart: Restart,
    ) -> bytes:
        while True:
            try:
                if first is not None:
                    assembler.add(first)
                    async for event in events:
                        assembler.add(event)
                return assembler.reply_json()
            except _UPSTREAM_ERRORS as exc:
                if not self._may_restart(exc, restart.attempt):
                    raise self._error(exc) from None
                log.info("restarting conversation %s: %s", assembler.conversation_id, exc)
                assembler.restart()
                events = restart.again("json")
                first = await self._first(events)

    def _check(self, body: ConversationIn) -> None:
        if len(body.messages) > self.settings.max_messages:
            raise ApiError(
                422,
                "too_many_messages",
                f"the conversation has {len(body.messages)} messages; the limit is "
                f"{self.settings.max_messages}",
            )

    async def run(
        self,
        body: ConversationIn,
        *,
        sse: bool,
        receive: Receive,
        deadline: float,
        admission: Admission | None = None,
    ) -> Response | None:
        """Answer one conversation as SSE or JSON (see the module docstring).

        ``deadline`` is monotonic; ``receive`` is the request's ASGI channel
        after its body was read (it then only reports a disconnect).
        ``admission`` is told when the first event arrived. Returns None when
        the client left before the answer; raises ApiError for a request or
        upstream failure before any output.
        """
        self._check(body)
        cid = body.conversation_id or uuid.uuid4().hex
        upstream = pb2.ConversationRequest(
            conversation_id=cid,
            messages=[pb2.Message(role=m.role, content=m.content) for m in body.messages],
            metadata=body.metadata,
        )
        restart = Restart(lambda: self._upstream(upstream, deadline), self.metrics)
        events = restart.again()
        assembler = ReplyAssembler(cid, self.settings.sse_done_reply_max_chars if sse else None)
        watcher = DisconnectWatcher(receive)
        handed_over = False
        try:
            first = await watcher.run(self._first(events))
            if admission is not None:
                admission.first_event(done=sse)
            if sse:
                handed_over = True
                return EventStreamResponse(
                    self._frames(first, events, assembler, restart),
                    watcher,
                    heartbeat_seconds=self.settings.sse_heartbeat_seconds,
                )
            reply = await watcher.run(self._collect(first, events, assembler, restart))
        except ClientGone:
            log.info("client left conversation %s; upstream call cancelled", cid)
            return None
        finally:
            if not handed_over:
                await watcher.close()
        return Response(reply, media_type="application/json")

    async def handle(self, request: Request, body: ConversationIn) -> Response:
        """The FastAPI route's way in (the gateway's :class:`Front` calls :meth:`run`)."""
        deadline = time.monotonic() + self.settings.request_timeout_seconds
        response = await self.run(
            body,
            sse=wants_sse(request.headers.get("accept")),
            receive=request.receive,
            deadline=deadline,
        )
        return Response(status_code=CLIENT_CLOSED_REQUEST) if response is None else response


class Admission:
    """One admitted conversation's place under the :class:`AdaptiveLimit`.

    It leaves the limit at its first event when that ends its working phase
    (SSE), else at :meth:`release` (the end of the request); the time from
    admission to the first event is the limiter's latency sample.
    """

    __slots__ = ("_latency", "_limiter", "_released", "admitted_at")

    def __init__(self, limiter: AdaptiveLimit, admitted_at: float) -> None:
        self._limiter = limiter
        self.admitted_at = admitted_at
        self._latency: float | None = None
        self._released = False

    def first_event(self, *, done: bool) -> None:
        self._latency = time.monotonic() - self.admitted_at
        if done:
            self.release()

    def release(self) -> None:
        """Leave the limit (once; later calls do nothing)."""
        if not self._released:
            self._released = True
            self._limiter.release(self._latency)
