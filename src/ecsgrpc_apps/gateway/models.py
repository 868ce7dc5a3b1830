"""The HTTP API's bodies (pydantic models; they are the OpenAPI schemas too)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ecsgrpc_apps.workflow.settings import AgentSettings

# The reference agent's own limit; a longer message would be refused upstream.
MAX_CONTENT_CHARS = AgentSettings().max_content_chars

__all__ = [
    "ConversationIn",
    "ConversationReply",
    "DoneEvent",
    "EndpointOut",
    "ErrorBody",
    "ErrorDetail",
    "EventOut",
    "Health",
    "MessageIn",
    "Problem",
    "Readiness",
]

EventKind = Literal["start", "delta", "complete", "unspecified"]


class MessageIn(BaseModel):
    """One message of the conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant", "system"]
    content: str = Field(..., max_length=MAX_CONTENT_CHARS)


class ConversationIn(BaseModel):
    """``POST /v1/conversations``: the conversation so far; the agent answers the last user turn."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"conversation_id": "c-1", "messages": [{"role": "user", "content": "hello"}]}
            ]
        },
    )

    conversation_id: str | None = Field(
        None, min_length=1, max_length=256, description="Generated when absent."
    )
    messages: list[MessageIn] = Field(
        ...,
        min_length=1,
        description="At least one message with role `user`; the agent answers the last one.",
        json_schema_extra={"contains": {"properties": {"role": {"const": "user"}}}},
    )
    metadata: dict[str, str] = Field(default_factory=dict, max_length=64)

    @model_validator(mode="after")
    def _has_a_user_turn(self) -> ConversationIn:
        if not any(m.role == "user" for m in self.messages):
            raise ValueError("messages: at least one message must have role 'user'")
        return self


class ConversationReply(BaseModel):
    """The JSON answer: the deltas assembled into ``reply``."""

    conversation_id: str
    reply: str
    served_by: str = Field(description="Instance id of the agent that answered.")
    events: int = Field(description="Events received from the agent (START, DELTAs, COMPLETE).")


class EventOut(BaseModel):
    """One Server-Sent Event's ``data``: one agent event as it arrived."""

    conversation_id: str
    sequence: int
    kind: EventKind
    text: str
    served_by: str
    delta_count: int


class DoneEvent(BaseModel):
    """The ``event: done`` data that ends a successful stream."""

    conversation_id: str
    reply: str | None = Field(
        description="The deltas joined; null when the reply is longer than "
        "GATEWAY_SSE_DONE_REPLY_MAX_CHARS characters (the client has it from the delta "
        "frames, and the gateway does not hold it)."
    )
    served_by: str
    events: int


class Problem(BaseModel):
    """One thing wrong with the request: where (``body.messages.0.role``) and what."""

    location: str
    message: str


class ErrorDetail(BaseModel):
    """What went wrong; ``code`` is stable (``bad_json``, ``unavailable``, ...)."""

    code: str
    message: str
    status: int
    problems: list[Problem] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """Every 4xx/5xx body (and the ``event: error`` data of a failed stream)."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready", "draining"]
    ready_endpoints: int
    state: str = Field(description="The gateway's lifecycle state (serving, draining, ...).")


class EndpointOut(BaseModel):
    """One agent endpoint as the balanced channel sees it."""

    address: str
    instance_id: str | None
    zone: str | None
    state: str
    health: str
    in_flight: int
    ejected: bool
    stalled: bool = Field(
        False, description="Set aside for silence: owing answers while other agents answer."
    )
    draining: bool
    pickable: bool
    last_error: str | None = Field(
        None, description="gRPC's last connection error while not connected (e.g. TLS)."
    )
    health_presumed: bool = Field(
        False,
        description="Taking calls on discovery's HEALTHY until its health Watch first answers.",
    )
