"""What the control plane serves: one :class:`XdsService` per ``xds:///NAME``.

A service names the xDS resources a client asks for (the Listener, the
RouteConfiguration, the Cluster and the ClusterLoadAssignment are all called
``NAME``) and the discovery target the control plane polls for its endpoints
(any ecsgrpc target: ``cloudmap://``, ``ecs://``, ``dns:///``, ``static:///``).
The policies below become fields of those resources; every one is checked
here, so a bad value fails at start with a message that names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ecsgrpc.errors import ConfigError
from ecsgrpc.targets import parse_target

__all__ = [
    "LB_POLICIES",
    "RETRY_CODES",
    "OutlierPolicy",
    "RetryPolicy",
    "XdsService",
    "parse_service",
]

# Cluster.lb_policy values every gRPC xDS client accepts (gRFC A27, A42).
LB_POLICIES = ("round_robin", "ring_hash")
# RetryPolicy.retry_on values gRPC honours (gRFC A44): gRPC status codes only.
RETRY_CODES = ("cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable")
# A listener name is what follows xds:/// in a client's target: keep it a plain host name.
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,252})$")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Route retry policy (gRFC A44): which status codes, how many retries, backoff.

    gRPC caps ``num_retries + 1`` attempts at 5; it retries only before the
    response has started (a committed call is never retried).
    """

    retry_on: tuple[str, ...] = ("unavailable",)
    num_retries: int = 2
    base_interval: float = 0.025
    max_interval: float = 0.25

    def __post_init__(self) -> None:
        bad = [code for code in self.retry_on if code not in RETRY_CODES]
        if bad:
            raise ConfigError(
                f"retry codes: {bad[0]!r} is not one of {', '.join(RETRY_CODES)} (gRFC A44)"
            )
        if not 0 <= self.num_retries <= 4:
            raise ConfigError(f"retries: need 0..4 (got {self.num_retries})")
        if not 0 < self.base_interval <= self.max_interval:
            raise ConfigError(
                f"retry backoff: need 0 < base <= max (got {self.base_interval}, "
                f"{self.max_interval})"
            )


@dataclass(frozen=True, slots=True)
class OutlierPolicy:
    """Outlier detection (gRFC A50), the failure-percentage algorithm.

    Every ``interval`` seconds, among endpoints that served at least
    ``request_volume`` calls, one that failed more than ``threshold`` percent of
    them is ejected for ``base_ejection`` seconds (times its ejection count, up
    to ``max_ejection``), never more than ``max_ejection_percent`` of the
    endpoints at once. Needs ``minimum_hosts`` endpoints with that volume.
    """

    interval: float = 2.0
    base_ejection: float = 10.0
    max_ejection: float = 60.0
    max_ejection_percent: int = 50
    threshold: int = 50
    minimum_hosts: int = 3
    request_volume: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.interval <= 3600:
            raise ConfigError(f"outlier interval: need 0 < s <= 3600 (got {self.interval})")
        if not 0 < self.base_ejection <= self.max_ejection:
            raise ConfigError(
                f"outlier ejection: need 0 < base <= max (got {self.base_ejection}, "
                f"{self.max_ejection})"
            )
        for label, value in (
            ("max ejection percent", self.max_ejection_percent),
            ("failure threshold", self.threshold),
        ):
            if not 0 <= value <= 100:
                raise ConfigError(f"outlier {label}: need 0..100 (got {value})")
        if self.minimum_hosts < 1 or self.request_volume < 1:
            raise ConfigError("outlier minimum hosts and request volume must be >= 1")


@dataclass(frozen=True, slots=True)
class XdsService:
    """One service offered as ``xds:///name``, discovered through ``target``.

    ``timeout``: the route's maximum call duration (gRFC A31; a client's own
    shorter deadline wins); None: none. ``rds``: the listener names the route
    configuration (fetched by RDS) instead of carrying it inline.
    ``zone_priority``: a client whose bootstrap names its zone gets its zone's
    endpoints at priority 0 and the others at priority 1 (it fails over to them
    only when its zone has none ready).
    """

    name: str
    target: str
    lb_policy: str = "round_robin"
    retry: RetryPolicy | None = field(default_factory=RetryPolicy)
    outlier: OutlierPolicy | None = field(default_factory=OutlierPolicy)
    timeout: float | None = None
    rds: bool = True
    zone_priority: bool = True

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(
                f"service name {self.name!r}: use letters, digits, '.', '_' or '-' "
                "(it is the NAME in xds:///NAME)"
            )
        parse_target(self.target)  # ConfigError naming the target
        if self.lb_policy not in LB_POLICIES:
            raise ConfigError(
                f"lb policy {self.lb_policy!r}: choose one of {', '.join(LB_POLICIES)}"
            )
        if self.timeout is not None and not 0 < self.timeout <= 86400:
            raise ConfigError(f"timeout: need 0 < seconds <= 86400 (got {self.timeout})")


def parse_service(text: str, **policies: object) -> XdsService:
    """``NAME=TARGET`` (the ``--service`` flag) as an :class:`XdsService`."""
    name, sep, target = text.partition("=")
    if not sep or not name.strip() or not target.strip():
        raise ConfigError(f"service {text!r}: expected NAME=TARGET, e.g. agent=dns:///agent:50051")
    return XdsService(name.strip(), target.strip(), **policies)  # type: ignore[arg-type]
