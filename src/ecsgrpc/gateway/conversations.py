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
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ecsgrpc.errors import EcsGrpcError
from ecsgrpc.gateway.errors import ApiError, from_grpc
from ecsgrpc.gateway.models import ConversationIn, ConversationReply, DoneEvent, EventOut
from ecsgrpc.gateway.settings import GatewaySettings
from ecsgrpc.gateway.sse import ClientGone, DisconnectWatcher, EventStreamResponse, sse_frame
from ecsgrpc.metrics import GatewayMetrics
from ecsgrpc.workflow import pb2, workflow_stub
from ecsgrpc.workflow.client import WorkflowClient, build_request

__all__ = ["CLIENT_CLOSED_REQUEST", "Conversations", "ReplyAssembler", "event_out", "wants_sse"]

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
    """Builds the reply from the events seen so far (DELTA texts in order)."""

    conversation_id: str
    parts: list[str] = field(default_factory=list)
    served_by: str = ""
    events: int = 0

    def add(self, event: pb2.ConversationEvent) -> None:
        self.events += 1
        self.served_by = event.served_by or self.served_by
        if event.kind == pb2.ConversationEvent.KIND_DELTA:
            self.parts.append(event.text)

    def reply(self) -> ConversationReply:
        return ConversationReply(
            conversation_id=self.conversation_id,
            reply="".join(self.parts),
            served_by=self.served_by,
            events=self.events,
        )


def _dump(model: EventOut | DoneEvent | ConversationReply) -> str:
    return json.dumps(model.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))


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
        self, request: pb2.ConversationRequest
    ) -> AsyncIterator[pb2.ConversationEvent]:
        """The agent's events.

        Waits at most ``endpoint_wait_seconds`` for a ready agent, then calls
        with ``wait_for_ready=False``: when every agent fails or is ejected
        mid-call, the answer is a quick 503, not a wait until the deadline.
        """
        started = time.monotonic()
        budget = self.settings.request_timeout_seconds
        channel = self.client.channel
        if channel.ready_count == 0:
            await channel.channel_ready(timeout=min(self.settings.endpoint_wait_seconds, budget))
        left = max(budget - (time.monotonic() - started), 0.001)
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
            return await anext(events)
        except StopAsyncIteration:
            return None
        except _UPSTREAM_ERRORS as exc:
            raise self._error(exc) from None

    async def _frames(
        self,
        first: pb2.ConversationEvent | None,
        events: AsyncIterator[pb2.ConversationEvent],
        assembler: ReplyAssembler,
    ) -> AsyncIterator[bytes]:
        try:
            if first is not None:
                assembler.add(first)
                yield sse_frame(_dump(event_out(first)), event_id=str(first.sequence))
                async for event in events:
                    assembler.add(event)
                    yield sse_frame(_dump(event_out(event)), event_id=str(event.sequence))
        except _UPSTREAM_ERRORS as exc:
            err = self._error(exc)
            log.warning(
                "stream of %s failed after %d events: %s",
                assembler.conversation_id,
                assembler.events,
                err.message,
            )
            body = err.body().model_dump(mode="json")
            yield sse_frame(json.dumps(body, separators=(",", ":")), event="error")
            return
        done = DoneEvent(**assembler.reply().model_dump())
        yield sse_frame(_dump(done), event="done")

    async def _collect(
        self,
        first: pb2.ConversationEvent | None,
        events: AsyncIterator[pb2.ConversationEvent],
        assembler: ReplyAssembler,
    ) -> ConversationReply:
        if first is None:
            return assembler.reply()
        assembler.add(first)
        try:
            async for event in events:
                assembler.add(event)
        except _UPSTREAM_ERRORS as exc:
            raise self._error(exc) from None
        return assembler.reply()

    def _check(self, body: ConversationIn) -> None:
        if len(body.messages) > self.settings.max_messages:
            raise ApiError(
                422,
                "too_many_messages",
                f"the conversation has {len(body.messages)} messages; the limit is "
                f"{self.settings.max_messages}",
            )

    async def handle(self, request: Request, body: ConversationIn) -> Response:
        """Answer one conversation as SSE or JSON (see the module docstring).

        Raises ApiError for a request or upstream failure before any output.
        """
        self._check(body)
        cid = body.conversation_id or uuid.uuid4().hex
        messages = [m.model_dump() for m in body.messages]
        events = self._upstream(build_request(cid, messages, body.metadata))
        assembler = ReplyAssembler(cid)
        watcher = DisconnectWatcher(request.receive)
        handed_over = False
        try:
            first = await watcher.run(self._first(events))
            if wants_sse(request.headers.get("accept")):
                handed_over = True
                return EventStreamResponse(self._frames(first, events, assembler), watcher)
            reply = await watcher.run(self._collect(first, events, assembler))
        except ClientGone:
            log.info("client left conversation %s; upstream call cancelled", cid)
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        finally:
            if not handed_over:
                await watcher.close()
        return JSONResponse(reply.model_dump(mode="json"))
