"""What a balanced channel tells the outside world about its endpoints.

A read-only, JSON-friendly view used by the gateway's ``/readyz`` and
``/debug/endpoints``, the CLI and tests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["EndpointStatus"]


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """One endpoint as the balancer sees it at one instant."""

    address: str
    instance_id: str | None
    zone: str | None
    state: str  # connectivity: idle, connecting, ready, transient_failure, shutdown
    health: str  # serving, not_serving, unknown (health checking off or not yet known)
    in_flight: int
    ejected: bool
    stalled: bool  # silent while it owes answers and others answer (set aside until it answers)
    draining: bool  # removed by discovery, finishing its in-flight calls
    pickable: bool  # new calls may go here
    # grpc's last connection error while not connected (e.g. a TLS handshake failure).
    last_error: str | None = None
    # Pickable on discovery's word (its health attribute is HEALTHY) until the
    # health Watch first answers (see subchannel.py, "Presumed health").
    health_presumed: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
