"""The reference Workflow Agent: a deterministic stand-in for a model.

For the last ``user`` message it streams: START, one DELTA per word (the first
word as is, later ones with a leading space, so the deltas concatenate to the
words joined by single spaces), then COMPLETE. ``sequence`` counts 0, 1, 2, ...
A per-event delay simulates a slow model; a client cancel stops the work.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator

import grpc

from ecsgrpc.server import ServiceSpec
from ecsgrpc_apps.workflow import SERVICE_NAME, pb2, pb2_grpc
from ecsgrpc_apps.workflow.settings import AgentSettings

__all__ = ["WorkflowAgentServicer", "agent_service", "default_instance_id", "validate_request"]

log = logging.getLogger(__name__)
Kind = pb2.ConversationEvent.Kind


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def validate_request(request: pb2.ConversationRequest, settings: AgentSettings) -> str:
    """Return the text to answer, or raise ValueError naming what is wrong."""
    if not request.messages:
        raise ValueError("conversation has no messages")
    if len(request.messages) > settings.max_messages:
        raise ValueError(
            f"conversation has {len(request.messages)} messages; the limit is "
            f"{settings.max_messages}"
        )
    for index, message in enumerate(request.messages):
        if len(message.content) > settings.max_content_chars:
            raise ValueError(
                f"messages[{index}].content has {len(message.content)} characters; the limit "
                f"is {settings.max_content_chars}"
            )
    users = [m for m in request.messages if m.role == "user"]
    if not users:
        raise ValueError("conversation has no message with role 'user'")
    return users[-1].content


class WorkflowAgentServicer(pb2_grpc.WorkflowAgentServicer):  # type: ignore[misc,unused-ignore]
    """Serves ``workflow.v1.WorkflowAgent``; safe for any number of concurrent calls."""

    def __init__(self, settings: AgentSettings | None = None) -> None:
        self._settings = settings or AgentSettings()
        self.instance_id = self._settings.instance_id or default_instance_id()
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Conversations being answered now (the load the autoscaling metric reports)."""
        return self._in_flight

    async def ProcessConversation(
        self, request: pb2.ConversationRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb2.ConversationEvent]:
        try:
            text = validate_request(request, self._settings)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return
        words = text.split()
        sent = 0
        finished = False
        self._in_flight += 1
        try:
            yield self._event(request, 0, Kind.KIND_START)
            for index, word in enumerate(words):
                await self._pause()
                delta = word if index == 0 else f" {word}"
                yield self._event(request, index + 1, Kind.KIND_DELTA, text=delta)
                sent += 1
            await self._pause()
            yield self._event(request, len(words) + 1, Kind.KIND_COMPLETE, delta_count=len(words))
            finished = True
        finally:
            # Not finished: the call ended early (the client cancelled, or its deadline
            # passed). grpc.aio then cancels this generator where it waits (CancelledError)
            # or, when the cancel found grpc sending an event, closes it at its ``yield``
            # (GeneratorExit): both are the client's cancel.
            self._in_flight -= 1
            if not finished:
                log.info(
                    "conversation %s cancelled by the client after %d of %d deltas",
                    request.conversation_id,
                    sent,
                    len(words),
                    extra={
                        "event": "cancelled",
                        "conversation_id": request.conversation_id,
                        "deltas_sent": sent,
                    },
                )

    async def DescribeAgent(
        self, request: pb2.DescribeAgentRequest, context: grpc.aio.ServicerContext
    ) -> pb2.AgentInfo:
        return pb2.AgentInfo(instance_id=self.instance_id)

    async def _pause(self) -> None:
        if self._settings.event_delay_seconds:
            await asyncio.sleep(self._settings.event_delay_seconds)

    def _event(
        self,
        request: pb2.ConversationRequest,
        sequence: int,
        kind: int,
        *,
        text: str = "",
        delta_count: int = 0,
    ) -> pb2.ConversationEvent:
        return pb2.ConversationEvent(
            conversation_id=request.conversation_id,
            sequence=sequence,
            served_by=self.instance_id,
            kind=kind,  # type: ignore[arg-type]
            text=text,
            delta_count=delta_count,
        )


def agent_service(servicer: WorkflowAgentServicer) -> ServiceSpec:
    """The :class:`ServiceSpec` that hosts ``servicer`` with :func:`ecsgrpc.serve`."""
    return ServiceSpec(
        SERVICE_NAME,
        lambda server: pb2_grpc.add_WorkflowAgentServicer_to_server(  # type: ignore[no-untyped-call]
            servicer, server
        ),
    )
