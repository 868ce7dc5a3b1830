"""Validated settings read from the environment (pydantic-settings).

The seed's names are kept: ``GRPC_HOST``/``GRPC_PORT`` for servers,
``WORKFLOW_SERVICE_HOST``/``WORKFLOW_SERVICE_PORT`` for the client's direct
mode. A bad value fails at start with :class:`~ecsgrpc.errors.ConfigError`
naming the variable and the value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ecsgrpc.errors import ConfigError

__all__ = [
    "DEFAULT_DRAIN_SECONDS",
    "DEFAULT_GRACE_SECONDS",
    "DEFAULT_GRPC_PORT",
    "ServerSettings",
    "load",
]

DEFAULT_GRPC_PORT = 50051
# drain + grace must stay well inside ECS's stopTimeout (default 30 s): 5 + 15 = 20 s.
DEFAULT_DRAIN_SECONDS = 5.0
DEFAULT_GRACE_SECONDS = 15.0
# Client keepalive (sent every 60 s) must be allowed by the server and stay
# below the NLB's 350 s idle timeout.
DEFAULT_CLIENT_KEEPALIVE_SECONDS = 60.0
DEFAULT_SERVER_MIN_PING_INTERVAL_SECONDS = 30.0
# grpc takes durations as C ints of milliseconds: at most 2**31 - 1 ms (~24.8 days).
_MAX_GRPC_MS_SECONDS = (2**31 - 1) // 1000


class ServerSettings(BaseSettings):
    """Settings of any server started with :func:`ecsgrpc.serve` (env prefix ``GRPC_``)."""

    model_config = SettingsConfigDict(env_prefix="GRPC_", extra="ignore", frozen=True)

    host: str = Field("0.0.0.0", min_length=1, description="Address to bind.")
    port: int = Field(DEFAULT_GRPC_PORT, ge=0, le=65535, description="Port to bind (0: any).")
    drain_seconds: float = Field(
        DEFAULT_DRAIN_SECONDS,
        ge=0,
        le=300,
        description="After SIGTERM: keep serving while reporting NOT_SERVING, so clients move.",
    )
    grace_seconds: float = Field(
        DEFAULT_GRACE_SECONDS,
        ge=0,
        le=300,
        description="After the drain: time for in-flight calls to finish before cancelling.",
    )
    max_connection_age_seconds: float | None = Field(
        None,
        gt=0,
        le=_MAX_GRPC_MS_SECONDS,
        description="Close connections after this age (gRFC A9) so L4-balanced clients rebalance.",
    )
    max_receive_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_send_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    min_ping_interval_seconds: float = Field(
        DEFAULT_SERVER_MIN_PING_INTERVAL_SECONDS, gt=0, le=_MAX_GRPC_MS_SECONDS
    )
    log_json: bool = Field(False, description="Log one JSON object per line.")
    log_level: str = Field("INFO", pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    # Security (docs/security.md). Empty values count as unset.
    tls_cert: Path | None = Field(None, description="Server certificate chain (PEM): TLS on.")
    tls_key: Path | None = Field(None, description="Server private key (PEM).")
    tls_ca: Path | None = Field(None, description="CA for client certificates: mTLS required.")
    auth_token: SecretStr | None = Field(None, description="Bearer token callers must send.")
    auth_token_file: Path | None = Field(None, description="File holding the bearer token.")
    max_concurrent_streams: int = Field(
        1000, ge=1, le=2**31 - 1, description="Concurrent calls per HTTP/2 connection."
    )
    max_call_seconds: float = Field(
        300.0, gt=0, le=7 * 86400, description="Calls running longer end with DEADLINE_EXCEEDED."
    )

    @field_validator(
        "tls_cert", "tls_key", "tls_ca", "auth_token", "auth_token_file", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value


_S = TypeVar("_S", bound=BaseSettings)


def load(cls: type[_S], **overrides: Any) -> _S:
    """Build settings from the environment plus explicit overrides (None ones ignored).

    Raises ConfigError naming each bad field and value.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return cls(**given)
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        raise ConfigError(describe_validation_error(exc, prefix)) from None


def describe_validation_error(exc: ValidationError, env_prefix: str = "") -> str:
    """One line per problem: ``GRPC_PORT='70000': Input should be less than ...``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "value"
        name = f"{env_prefix}{loc}".upper() if env_prefix else loc
        given = "<redacted>" if _is_secret(loc) else repr(err.get("input"))
        parts.append(f"{name}={given}: {err['msg']}")
    return "invalid settings: " + "; ".join(parts)


# AWS's default TCP idle timeout of an NLB listener; client keepalives stay below it.
NLB_DEFAULT_TCP_IDLE_TIMEOUT_SECONDS = 350.0

__all__ += [
    "DEFAULT_CLIENT_KEEPALIVE_SECONDS",
    "DEFAULT_SERVER_MIN_PING_INTERVAL_SECONDS",
    "NLB_DEFAULT_TCP_IDLE_TIMEOUT_SECONDS",
]


def _is_secret(field: str) -> bool:
    """Fields whose values never appear in an error message (tokens, passwords)."""
    lowered = field.lower()
    return any(word in lowered for word in ("token", "secret", "password")) and not (
        lowered.endswith("_file")
    )
