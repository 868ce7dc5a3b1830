"""Settings of the reference Workflow Agent and its clients (apps, not the library).

The seed's names are kept: ``WORKFLOW_SERVICE_HOST``/``WORKFLOW_SERVICE_PORT``
for the client's direct mode, ``WORKFLOW_SERVICE_TARGET`` for any target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ecsgrpc.config import DEFAULT_GRPC_PORT
from ecsgrpc.envreader import load, setting, validate

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
    "check_target",
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


def check_target(value: str) -> None:
    """ValueError (ConfigError) when ``value`` is neither one of our targets nor ``xds:``."""
    if value.startswith("xds:"):
        from ecsgrpc.xds.channel import check_xds_target

        check_xds_target(value)  # gRPC's xDS client (docs/xds.md)
        return
    from ecsgrpc.targets import parse_target

    parse_target(value)  # ConfigError is a ValueError: its message is the reason


def _check_dimensions(value: str) -> None:
    from ecsgrpc_apps.workflow.emf import parse_dimensions

    parse_dimensions(value)


def _check_host(value: str) -> None:
    from ecsgrpc.targets_util import parse_host_port

    parse_host_port(value, default_port=DEFAULT_GRPC_PORT)


@dataclass(frozen=True)
class ClientSettings:
    """Where a Workflow Agent client connects (env prefix ``WORKFLOW_SERVICE_``).

    The rule: ``WORKFLOW_SERVICE_TARGET`` (any target) wins; else
    ``WORKFLOW_SERVICE_HOST`` (+ ``WORKFLOW_SERVICE_PORT``, default 50051) is the
    seed's direct mode, one fixed endpoint; else :data:`DEFAULT_WORKFLOW_TARGET`.
    Empty variables count as unset.
    """

    ENV_PREFIX: ClassVar[str] = "WORKFLOW_SERVICE_"

    target: str | None = setting(
        None, kind="str", check=check_target, help="A target (see docs/discovery.md)."
    )
    host: str | None = setting(
        None, kind="str", min_length=1, check=_check_host, help="Direct mode: one agent's host."
    )
    port: int = setting(
        DEFAULT_GRPC_PORT, kind="int", ge=1, le=65535, help="Direct mode: its port."
    )

    def __post_init__(self) -> None:
        validate(self)

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


@dataclass(frozen=True)
class AgentSettings:
    """The reference Workflow Agent's own settings (env prefix ``AGENT_``)."""

    ENV_PREFIX: ClassVar[str] = "AGENT_"

    instance_id: str | None = setting(
        None, kind="str", max_length=256, help="Identity reported as served_by (hostname-pid)."
    )
    event_delay_seconds: float = setting(
        0.0, kind="float", ge=0, le=60, help="Delay before each event (simulates a slow model)."
    )
    max_content_chars: int = setting(
        16_384, kind="int", ge=1, le=2**31 - 1, help="Largest message content accepted."
    )
    max_messages: int = setting(
        256, kind="int", ge=1, le=2**31 - 1, help="Most messages accepted per conversation."
    )
    metrics_namespace: str | None = setting(
        None,
        kind="str",
        min_length=1,
        max_length=255,
        help="CloudWatch namespace of the in-flight conversations metric, written as "
        "embedded metric format lines on stdout; unset: not written.",
    )
    metrics_dimensions: str = setting(
        "",
        kind="str",
        check=_check_dimensions,
        help="Dimensions of that metric, NAME=VALUE,NAME=VALUE.",
    )
    metrics_interval_seconds: float = setting(
        10.0, kind="float", ge=1, le=60, help="Seconds between two metric lines."
    )
    cpu_policy: str = setting(
        "batch",
        kind="str",
        choices=("batch", "normal"),
        help="Linux CPU scheduling policy of the agent's threads: batch (SCHED_BATCH: gRPC's "
        "threads and the event loop do not preempt each other when they wake) or normal.",
    )

    def __post_init__(self) -> None:
        validate(self)
