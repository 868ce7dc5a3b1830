"""``dns+srv:///_grpc._tcp.name``: SRV records, then each record target's addresses.

Cloud Map writes SRV records for bridge/host networking; Consul and Kubernetes
headless services answer SRV too. Each record gives a port, a ``weight`` and a
``priority`` (both kept as endpoint attributes, with ``srv_target``). A record
whose target does not resolve (NXDOMAIN or no address) is skipped and counted
(reason ``srv_target_unresolved``); a target lookup that *fails* (timeout,
SERVFAIL) fails the whole resolution instead, so an outage never passes for a
smaller set. Refresh follows the smallest TTL of the SRV and address records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import dns.asyncresolver

from ecsgrpc.endpoints import ATTR_WEIGHT, Endpoint, EndpointSet
from ecsgrpc.resolvers.dnsquery import (
    AddressAnswer,
    NameNotFound,
    lookup,
    lookup_addresses,
    make_dns_resolver,
)
from ecsgrpc.resolvers.options import ResolverOptions
from ecsgrpc.resolvers.polling import PollingResolver, Skip, dedupe
from ecsgrpc.targets import SrvSpec

if TYPE_CHECKING:  # prometheus-client loads with the first resolution (polling.py)
    from prometheus_client import CollectorRegistry

__all__ = ["SrvRecord", "SrvResolver", "endpoints_from_srv"]

ATTR_PRIORITY = "priority"
ATTR_SRV_TARGET = "srv_target"
# At most this many target lookups at once (each asks A and AAAA).
_LOOKUP_CONCURRENCY = 16

SrvRecord = tuple[int, int, int, str]  # priority, weight, port, target (no trailing dot)


class SrvResolver(PollingResolver):
    """SRV resolver for a :class:`~ecsgrpc.targets.SrvSpec`."""

    def __init__(
        self,
        spec: SrvSpec,
        *,
        options: ResolverOptions | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        super().__init__("dns+srv", spec.target or spec.name, options=options, registry=registry)
        self._spec = spec
        self._dns: dns.asyncresolver.Resolver | None = None

    async def _fetch(self) -> EndpointSet:
        if self._dns is None:
            self._dns = await make_dns_resolver(self._spec.nameserver)
        timeout = self._options.timeout
        answer = await lookup(self._dns, self._spec.name, "SRV", lifetime=timeout)
        records: list[SrvRecord] = []
        ttls: list[float] = []
        if answer.rrset is not None:
            ttls.append(answer.rrset.ttl)
            records = [
                (r.priority, r.weight, r.port, r.target.to_text(omit_final_dot=True))
                for r in answer.rrset
            ]
        addresses = await self._lookup_targets({r[3] for r in records if r[3] not in ("", ".")})
        ttls.extend(a.ttl for a in addresses.values() if a is not None and a.ttl is not None)
        endpoints = endpoints_from_srv(records, addresses, self._skip)
        return EndpointSet.of(endpoints, source=self.name, ttl=min(ttls) if ttls else None)

    async def _lookup_targets(self, names: Iterable[str]) -> dict[str, AddressAnswer | None]:
        """Addresses per target; None for a target that does not exist."""
        assert self._dns is not None
        resolver, timeout = self._dns, self._options.timeout
        gate = asyncio.Semaphore(_LOOKUP_CONCURRENCY)

        async def one(name: str) -> AddressAnswer | None:
            async with gate:
                try:
                    return await lookup_addresses(resolver, name, lifetime=timeout)
                except NameNotFound:
                    return None

        ordered = sorted(names)
        found = await asyncio.gather(*(one(n) for n in ordered))
        return dict(zip(ordered, found, strict=True))

    def refresh_delay(self, snapshot: EndpointSet) -> float:
        return self._ttl_delay(snapshot.ttl)


def endpoints_from_srv(
    records: Sequence[SrvRecord], addresses: dict[str, AddressAnswer | None], skip: Skip
) -> list[Endpoint]:
    """One endpoint per (record, target address); unusable records skipped via ``skip``."""
    endpoints: list[Endpoint] = []
    for priority, weight, port, target in sorted(records):
        if target in ("", "."):
            skip("srv_no_service", f"SRV target '.' (port {port})")
            continue
        if not 1 <= port <= 65535:
            skip("bad_port", f"{target} port {port}")
            continue
        answer = addresses.get(target)
        if answer is None or not answer.addresses:
            skip("srv_target_unresolved", target)
            continue
        attrs = {ATTR_WEIGHT: str(weight), ATTR_PRIORITY: str(priority), ATTR_SRV_TARGET: target}
        endpoints.extend(Endpoint(host, port, attrs) for host in answer.addresses)
    return dedupe(endpoints, skip)
