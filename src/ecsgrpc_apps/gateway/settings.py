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
    sse_heartbeat_seconds: float = Field(
        15.0,
        ge=0,
        le=3600,
        description="SSE: a `: keep-alive` comment after this long without an event (0: off).",
    )
    sse_done_reply_max_chars: int = Field(
        64 * 1024,
        ge=0,
        description="SSE: the `done` frame repeats the reply up to this many characters; "
        "a longer reply gets `reply: null` there (the gateway does not hold it).",
    )
    max_concurrency: int = Field(
        256,
        ge=1,
        description="Ceiling of the adaptive concurrency limit: conversations in their working "
        "phase (JSON: until the reply; SSE: until the first event). Above the limit: 503.",
    )
    min_concurrency: int = Field(
        12,
        ge=1,
        description="Floor of the adaptive concurrency limit: fewer conversations in their "
        "working phase are never refused. Below about 12 the gateway's event loop handles too "
        "few events per turn and serves less under overload (docs/benchmarks.md).",
    )
    latency_tolerance: float = Field(
        2.0,
        ge=1.0,
        le=20.0,
        description="How many times its no-load latency a conversation's time to first event "
        "may take before the adaptive limit shrinks.",
    )
    adaptive_concurrency: bool = Field(
        True,
        description="Adapt the limit to latency (a gradient limiter); off: fixed at "
        "GATEWAY_MAX_CONCURRENCY.",
    )
    max_connections: int = Field(
        8192,
        ge=1,
        description="Open HTTP connections at most (also kept below the open-files limit); "
        "a connection above it gets 503 and is closed.",
    )
    max_header_count: int = Field(
        100, ge=1, le=10_000, description="Header fields per request at most (431 above)."
    )
    max_head_bytes: int = Field(
        16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Request line + headers, bytes at most (431 above), however they arrive.",
    )
    head_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Time to send a request's line and headers (408 and close after it).",
    )
    keep_alive_seconds: float = Field(
        5.0, gt=0, le=3600, description="An idle keep-alive connection is closed after this."
    )
    reuse_port: bool = Field(
        False,
        description="Bind with SO_REUSEPORT, so several gateway processes share one port "
        "and the kernel spreads connections over them (one process per core).",
    )
    event_loop: str = Field(
        "auto",
        pattern=r"^(auto|asyncio|uvloop)$",
        description="The event loop: uvloop (the uvloop extra), asyncio, or auto: uvloop "
        "when it is installed, else asyncio.",
    )
    http_parser: str = Field(
        "auto",
        pattern=r"^(auto|h11|httptools)$",
        description="The HTTP/1.1 parser: httptools (the httptools extra), h11, or auto: "
        "httptools when it is installed, else h11.",
    )
    cpu_policy: str = Field(
        "batch",
        pattern=r"^(batch|normal)$",
        description="Linux CPU scheduling policy of the gateway's threads: batch "
        "(SCHED_BATCH: gRPC's threads and the event loop do not preempt each other when they "
        "wake, about a fifth less CPU per conversation) or normal (SCHED_OTHER).",
    )
    docs: bool = Field(
        False, description="Serve the interactive API docs at /docs (loads assets from a CDN)."
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
