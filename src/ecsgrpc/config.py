"""The library's settings and defaults, read from the environment.

The seed's names are kept: ``GRPC_HOST``/``GRPC_PORT`` for servers. A bad
value fails at start with :class:`~ecsgrpc.errors.ConfigError` naming the
variable (or the flag the user typed) and the value. The reader is
:mod:`ecsgrpc.envreader` (standard library only); the applications' settings
live in their own packages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ecsgrpc.defaults import (
    DEFAULT_CLIENT_KEEPALIVE_SECONDS,
    DEFAULT_DRAIN_SECONDS,
    DEFAULT_GRACE_SECONDS,
    DEFAULT_GRPC_PORT,
    DEFAULT_SERVER_MIN_PING_INTERVAL_SECONDS,
    NLB_DEFAULT_TCP_IDLE_TIMEOUT_SECONDS,
)
from ecsgrpc.envreader import Secret, env_names, load, setting, validate

__all__ = [
    "DEFAULT_DRAIN_SECONDS",
    "DEFAULT_GRACE_SECONDS",
    "DEFAULT_GRPC_PORT",
    "Secret",
    "ServerSettings",
    "env_names",
    "load",
]

# grpc takes durations as C ints of milliseconds: at most 2**31 - 1 ms (~24.8 days).
_MAX_GRPC_MS_SECONDS = (2**31 - 1) // 1000


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class ServerSettings:
    """Settings of any server started with :func:`ecsgrpc.serve` (env prefix ``GRPC_``).

    Construction validates (ConfigError naming the variable); :func:`load`
    reads the environment. Security files and tokens: docs/security.md.
    """

    ENV_PREFIX: ClassVar[str] = "GRPC_"

    host: str = setting("0.0.0.0", kind="str", min_length=1, help="Address to bind.")
    port: int = setting(
        DEFAULT_GRPC_PORT, kind="int", ge=0, le=65535, help="Port to bind (0: any free port)."
    )
    drain_seconds: float = setting(
        DEFAULT_DRAIN_SECONDS,
        kind="float",
        ge=0,
        le=300,
        help="After SIGTERM: keep serving while reporting NOT_SERVING, so clients move.",
    )
    grace_seconds: float = setting(
        DEFAULT_GRACE_SECONDS,
        kind="float",
        ge=0,
        le=300,
        help="After the drain: time for in-flight calls to finish before cancelling.",
    )
    max_connection_age_seconds: float | None = setting(
        None,
        kind="float",
        gt=0,
        le=_MAX_GRPC_MS_SECONDS,
        help="Close connections after this age (gRFC A9) so L4-balanced clients rebalance.",
    )
    max_receive_message_bytes: int = setting(
        4 * 1024 * 1024, kind="int", ge=1024, le=2**31 - 1, help="Largest message received."
    )
    max_send_message_bytes: int = setting(
        4 * 1024 * 1024, kind="int", ge=1024, le=2**31 - 1, help="Largest message sent."
    )
    min_ping_interval_seconds: float = setting(
        DEFAULT_SERVER_MIN_PING_INTERVAL_SECONDS,
        kind="float",
        gt=0,
        le=_MAX_GRPC_MS_SECONDS,
        help="Client pings accepted this often (keepalive enforcement).",
    )
    log_json: bool = setting(False, kind="bool", help="Log one JSON object per line.")
    log_level: str = setting("INFO", kind="str", choices=_LOG_LEVELS, help="Log level.")
    # Security (docs/security.md). Empty values count as unset.
    tls_cert: Path | None = setting(None, kind="path", help="Certificate chain (PEM): TLS on.")
    tls_key: Path | None = setting(None, kind="path", help="Private key (PEM) of the certificate.")
    tls_ca: Path | None = setting(
        None, kind="path", help="CA for client certificates: mTLS required."
    )
    auth_token: Secret | None = setting(None, kind="secret", help="Bearer token callers send.")
    auth_token_file: Path | None = setting(None, kind="path", help="File holding the token.")
    max_concurrent_streams: int = setting(
        1000, kind="int", ge=1, le=2**31 - 1, help="Concurrent calls per HTTP/2 connection."
    )
    max_call_seconds: float = setting(
        300.0,
        kind="float",
        gt=0,
        le=7 * 86400,
        help="Calls running longer end with DEADLINE_EXCEEDED.",
    )

    def __post_init__(self) -> None:
        validate(self)


__all__ += [
    "DEFAULT_CLIENT_KEEPALIVE_SECONDS",
    "DEFAULT_SERVER_MIN_PING_INTERVAL_SECONDS",
    "NLB_DEFAULT_TCP_IDLE_TIMEOUT_SECONDS",
]
