"""Settings of the reference Workflow Agent and its clients (apps, not the library).

The seed's names are kept: ``WORKFLOW_SERVICE_HOST``/``WORKFLOW_SERVICE_PORT``
for the client's direct mode, ``WORKFLOW_SERVICE_TARGET`` for any target.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ecsgrpc.config import DEFAULT_GRPC_PORT, load

# Deployed names and timings. infra/terraform/modules/ecsgrpc uses the same
# defaults; tests/test_terraform.py fails when the two drift apart.
DEFAULT_CLOUDMAP_NAMESPACE = "workflow.local"
DEFAULT_CLOUDMAP_SERVICE = "workflow-agent"
DEFAULT_CLOUDMAP_DNS_TTL_SECONDS = 10
WORKFLOW_SERVICE_TARGET_ENV = "WORKFLOW_SERVICE_TARGET"
# The Cloud Map link names the port: ECS registers a task with A records only
# (no SRV) without AWS_INSTANCE_PORT, and an instance without a port is skipped.
DEFAULT_WORKFLOW_SERVICE_TARGET = (
    f"cloudmap://{DEFAULT_CLOUDMAP_NAMESPACE}/{DEFAULT_CLOUDMAP_SERVICE}?port={DEFAULT_GRPC_PORT}"
    f"|dns:///{DEFAULT_CLOUDMAP_SERVICE}.{DEFAULT_CLOUDMAP_NAMESPACE}:{DEFAULT_GRPC_PORT}"
)

__all__ = [
    "AgentSettings",
    "DEFAULT_CLOUDMAP_DNS_TTL_SECONDS",
    "DEFAULT_CLOUDMAP_NAMESPACE",
    "DEFAULT_CLOUDMAP_SERVICE",
    "DEFAULT_WORKFLOW_SERVICE_TARGET",
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
    metrics_namespace: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="CloudWatch namespace of the in-flight conversations metric, written as "
        "embedded metric format lines on stdout; unset: not written.",
    )
    metrics_dimensions: str = Field(
        "", description="Dimensions of that metric, NAME=VALUE,NAME=VALUE."
    )
    metrics_interval_seconds: float = Field(
        10.0, ge=1, le=60, description="Seconds between two metric lines."
    )

    @field_validator("metrics_dimensions")
    @classmethod
    def _valid_dimensions(cls, value: str) -> str:
        from ecsgrpc_apps.workflow.emf import parse_dimensions

        parse_dimensions(value)
        return value
