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
    "AgentSettings",
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


class AgentSettings(BaseSettings):
    """The reference Workflow Agent's own settings (env prefix ``AGENT_``)."""

    model_config = SettingsConfigDict(env_prefix="AGENT_", extra="ignore", frozen=True)

    instance_id: str | None = Field(
        None, description="Identity reported as served_by (default: hostname-pid)."
    )
    event_delay_seconds: float = Field(
        0.0, ge=0, le=60, description="Delay before each event (simulates a slow model)."
    )
    max_content_chars: int = Field(
        16_384, ge=1, description="Largest message content accepted, in characters."
    )
    max_messages: int = Field(256, ge=1, description="Most messages accepted per conversation.")


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


# Deployed names and timings. infra/terraform/modules/ecsgrpc uses the same
# defaults; tests/test_terraform.py fails when the two drift apart.
DEFAULT_CLOUDMAP_NAMESPACE = "workflow.local"
DEFAULT_CLOUDMAP_SERVICE = "workflow-agent"
DEFAULT_CLOUDMAP_DNS_TTL_SECONDS = 10
WORKFLOW_SERVICE_TARGET_ENV = "WORKFLOW_SERVICE_TARGET"
DEFAULT_WORKFLOW_SERVICE_TARGET = (
    f"cloudmap://{DEFAULT_CLOUDMAP_NAMESPACE}/{DEFAULT_CLOUDMAP_SERVICE}"
    f"|dns:///{DEFAULT_CLOUDMAP_SERVICE}.{DEFAULT_CLOUDMAP_NAMESPACE}:{DEFAULT_GRPC_PORT}"
)
# AWS's default TCP idle timeout of an NLB listener; client keepalives stay below it.
NLB_DEFAULT_TCP_IDLE_TIMEOUT_SECONDS = 350.0

__all__ += [
    "DEFAULT_CLIENT_KEEPALIVE_SECONDS",
    "DEFAULT_CLOUDMAP_DNS_TTL_SECONDS",
    "DEFAULT_CLOUDMAP_NAMESPACE",
    "DEFAULT_CLOUDMAP_SERVICE",
    "DEFAULT_SERVER_MIN_PING_INTERVAL_SECONDS",
    "DEFAULT_WORKFLOW_SERVICE_TARGET",
    "NLB_DEFAULT_TCP_IDLE_TIMEOUT_SECONDS",
    "WORKFLOW_SERVICE_TARGET_ENV",
]


# The deployed default target (the chain above): Cloud Map's API (zones, health,
# fast changes), and its DNS records when the API cannot be reached.
DEFAULT_WORKFLOW_TARGET = DEFAULT_WORKFLOW_SERVICE_TARGET


class ClientSettings(BaseSettings):
    """Where a Workflow Agent client connects (env prefix ``WORKFLOW_SERVICE_``).

    The rule: ``WORKFLOW_SERVICE_TARGET`` (any target) wins; else
    ``WORKFLOW_SERVICE_HOST`` (+ ``WORKFLOW_SERVICE_PORT``, default 50051) is the
    seed's direct mode, one fixed endpoint; else :data:`DEFAULT_WORKFLOW_TARGET`.
    Empty variables count as unset.
    """

    model_config = SettingsConfigDict(
        env_prefix="WORKFLOW_SERVICE_", extra="ignore", frozen=True, env_ignore_empty=True
    )

    target: str | None = Field(None, description="A target (see docs/discovery.md).")
    host: str | None = Field(None, min_length=1, description="Direct mode: one agent's host.")
    port: int = Field(DEFAULT_GRPC_PORT, ge=1, le=65535, description="Direct mode: its port.")

    @field_validator("target")
    @classmethod
    def _valid_target(cls, value: str | None) -> str | None:
        if value is not None:
            from ecsgrpc.targets import parse_target

            parse_target(value)  # ConfigError is a ValueError: pydantic reports it
        return value

    @field_validator("host")
    @classmethod
    def _valid_host(cls, value: str | None) -> str | None:
        if value is not None:
            from ecsgrpc.targets_util import parse_host_port

            parse_host_port(value, default_port=DEFAULT_GRPC_PORT)
        return value

    def resolved_target(self) -> str:
        """The target this rule picks (see the class docstring)."""
        if self.target is not None:
            return self.target
        if self.host is not None:
            from ecsgrpc.targets_util import parse_host_port

            # A port written into the host (``agent:7000``) wins over the variable.
            host, port = parse_host_port(self.host, default_port=self.port)
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return DEFAULT_WORKFLOW_TARGET


def target_from_env() -> str:
    """The client's target from the environment; ConfigError names a bad variable."""
    return load(ClientSettings).resolved_target()


__all__ += ["DEFAULT_WORKFLOW_TARGET", "ClientSettings", "target_from_env"]


def _is_secret(field: str) -> bool:
    """Fields whose values never appear in an error message (tokens, passwords)."""
    lowered = field.lower()
    return any(word in lowered for word in ("token", "secret", "password")) and not (
        lowered.endswith("_file")
    )
