"""Endpoints and immutable endpoint snapshots, the values resolvers produce.

An :class:`EndpointSet` is a value: two snapshots with the same members and
attributes compare equal, so "did anything change?" is ``old != new`` and the
balancer works from a diff rather than a guess.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "ATTR_AVAILABILITY_ZONE",
    "ATTR_HEALTH",
    "ATTR_INSTANCE_ID",
    "ATTR_WEIGHT",
    "Endpoint",
    "EndpointSet",
]

# Well-known attribute keys, shared by every resolver.
ATTR_INSTANCE_ID = "instance_id"
ATTR_AVAILABILITY_ZONE = "availability_zone"
ATTR_WEIGHT = "weight"
ATTR_HEALTH = "health"  # as reported by the source (e.g. Cloud Map HEALTHY/UNHEALTHY)


# Endpoints that are sockets, not IP addresses: grpc takes these names as they are.
_SOCKET_SCHEMES = ("unix:", "unix-abstract:")


def _freeze(attrs: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(sorted((attrs or {}).items())))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address that can take gRPC calls, with what the source knows about it.

    ``attributes`` is read-only; equality and hashing use host, port and attributes.
    """

    host: str
    port: int
    attributes: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    _attr_key: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=True)

    def __post_init__(self) -> None:
        frozen = _freeze(self.attributes)
        object.__setattr__(self, "attributes", frozen)
        object.__setattr__(self, "_attr_key", tuple(frozen.items()))

    @property
    def address(self) -> str:
        """``host:port``, with IPv6 hosts bracketed, as grpc expects; a Unix
        socket endpoint (``unix:PATH``/``unix-abstract:NAME``, port 0) is its host."""
        if self.port == 0 and self.host.startswith(_SOCKET_SCHEMES):
            return self.host
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def zone(self) -> str | None:
        return self.attributes.get(ATTR_AVAILABILITY_ZONE)

    @property
    def instance_id(self) -> str | None:
        return self.attributes.get(ATTR_INSTANCE_ID)

    @property
    def weight(self) -> int:
        """Relative weight (>= 1); a missing or malformed attribute counts as 1."""
        raw = self.attributes.get(ATTR_WEIGHT, "1")
        try:
            value = int(raw)
        except ValueError:
            return 1
        return max(1, min(value, 1000))

    def to_dict(self) -> dict[str, object]:
        return {"host": self.host, "port": self.port, "attributes": dict(self.attributes)}


@dataclass(frozen=True, slots=True)
class EndpointSet:
    """An immutable snapshot of a target's endpoints.

    ``endpoints`` is sorted and free of duplicate addresses. ``source`` names the
    resolver that produced it (e.g. ``"cloudmap"``, ``"dns"``); ``fetched_at`` is a
    ``time.monotonic()`` reading and ``ttl`` how long the answer is valid (seconds).
    Only ``endpoints`` takes part in equality: a re-fetch with the same members is
    the same snapshot.
    """

    endpoints: tuple[Endpoint, ...]
    source: str = field(default="static", compare=False)
    fetched_at: float = field(default_factory=time.monotonic, compare=False)
    ttl: float | None = field(default=None, compare=False)

    @classmethod
    def of(
        cls,
        endpoints: Iterable[Endpoint],
        *,
        source: str = "static",
        ttl: float | None = None,
        fetched_at: float | None = None,
    ) -> EndpointSet:
        """Build a snapshot: sorted by address, first of each address kept."""
        unique: dict[str, Endpoint] = {}
        for ep in endpoints:
            unique.setdefault(ep.address, ep)
        ordered = tuple(unique[k] for k in sorted(unique))
        return cls(
            ordered,
            source=source,
            ttl=ttl,
            fetched_at=time.monotonic() if fetched_at is None else fetched_at,
        )

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self.endpoints)

    def __len__(self) -> int:
        return len(self.endpoints)

    @property
    def addresses(self) -> frozenset[str]:
        return frozenset(ep.address for ep in self.endpoints)

    def diff(self, newer: EndpointSet) -> tuple[list[Endpoint], list[Endpoint], list[Endpoint]]:
        """(added, removed, changed) going from self to newer, by address."""
        old = {ep.address: ep for ep in self.endpoints}
        new = {ep.address: ep for ep in newer.endpoints}
        added = [new[a] for a in sorted(new.keys() - old.keys())]
        removed = [old[a] for a in sorted(old.keys() - new.keys())]
        changed = [new[a] for a in sorted(new.keys() & old.keys()) if new[a] != old[a]]
        return added, removed, changed
