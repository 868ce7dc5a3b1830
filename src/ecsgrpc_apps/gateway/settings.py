"""The gateway's settings (pydantic-settings, env prefix ``GATEWAY_``).

The upstream target is not here: it comes from ``--target`` or the client's
own variables (``WORKFLOW_SERVICE_TARGET``, ...), like every ecsgrpc client.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["GatewaySettings"]


class GatewaySettings(BaseSettings):
    """Settings of ``ecsgrpc gateway``; a bad value fails at start naming the variable."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    host: str = Field("0.0.0.0", min_length=1, description="Address to bind.")
    port: int = Field(8080, ge=0, le=65535, description="Port to bind (0: any free port).")
    request_timeout_seconds: float = Field(
        60.0, gt=0, le=3600, description="Deadline of one conversation, upstream call included."
    )
    endpoint_wait_seconds: float = Field(
        5.0,
        ge=0,
        le=3600,
        description="How long a request waits for a ready agent before answering 503.",
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=256, description="Largest request body accepted (413 above)."
    )
    max_messages: int = Field(256, ge=1, description="Most messages per conversation (422 above).")
    drain_seconds: float = Field(
        5.0,
        ge=0,
        le=300,
        description="After SIGTERM: keep serving with /readyz at 503 so the load balancer moves.",
    )
    grace_seconds: float = Field(
        15.0,
        ge=0,
        le=300,
        description="After the drain: time for in-flight requests and streams to finish.",
    )
    restart_interrupted: bool = Field(
        True,
        description=(
            "Restart, once and on another agent, a conversation whose agent died mid-stream: "
            "silently in JSON mode (nothing was sent yet), after an `event: reset` frame in "
            "SSE mode (the client discards what it showed). Off: the client gets the error."
        ),
    )
    access_log: bool = Field(True, description="Log one line per HTTP request.")
    log_json: bool = Field(False, description="Log one JSON object per line.")
    log_level: str = Field("INFO", pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
