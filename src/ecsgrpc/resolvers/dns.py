"""``dns:///name:port``: every A and AAAA record of a name, refreshed on the record TTL.

The refresh comes when the smallest TTL of the answer expires, clamped to
``[min_ttl, max_ttl]`` and made up to ``refresh_jitter`` earlier so clients
that started together drift apart (grpcio's own ``dns:///`` resolver ignores
the TTL). Names in the hosts file answer first, as with grpc (see
:mod:`ecsgrpc.resolvers.hosts`). An answer without records is a real, empty answer (re-asked after
``negative_ttl``); NXDOMAIN, SERVFAIL, timeouts and network errors are errors,
so the watch keeps the last-known-good set and backs off.

dnspython loads with the first resolution that asks DNS (the channel's first
use), in a worker thread, not at ``connect()``: building the resolver imports
nothing but this module and the hosts-file reader.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING

from ecsgrpc.endpoints import Endpoint, EndpointSet
from ecsgrpc.resolvers.hosts import HostsFile
from ecsgrpc.resolvers.options import ResolverOptions
from ecsgrpc.resolvers.polling import PollingResolver, dedupe
from ecsgrpc.targets import DnsSpec

if TYPE_CHECKING:
    import dns.asyncresolver
    from prometheus_client import CollectorRegistry

__all__ = ["DnsResolver"]


class DnsResolver(PollingResolver):
    """A/AAAA resolver for a :class:`~ecsgrpc.targets.DnsSpec`."""

    def __init__(
        self,
        spec: DnsSpec,
        *,
        options: ResolverOptions | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        super().__init__("dns", spec.target or spec.name, options=options, registry=registry)
        self._spec = spec
        self._dns: dns.asyncresolver.Resolver | None = None
        # The system resolver's order: the hosts file, then DNS (module hosts).
        self._hosts = HostsFile() if spec.nameserver is None else None

    async def _fetch(self) -> EndpointSet:
        if self._hosts is not None:
            pinned = await self._hosts.lookup(self._spec.name)
            if pinned:
                pinned_endpoints = [Endpoint(a, self._spec.port) for a in pinned]
                return EndpointSet.of(pinned_endpoints, source=self.name)
        if self._dns is None:
            # dnspython (about 0.1 s of CPU to import) loads once, off the event loop.
            await asyncio.to_thread(importlib.import_module, "ecsgrpc.resolvers.dnsquery")
        from ecsgrpc.resolvers.dnsquery import lookup_addresses, make_dns_resolver

        if self._dns is None:
            self._dns = await make_dns_resolver(self._spec.nameserver)
        answer = await lookup_addresses(self._dns, self._spec.name, lifetime=self._options.timeout)
        endpoints = dedupe((Endpoint(a, self._spec.port) for a in answer.addresses), self._skip)
        return EndpointSet.of(endpoints, source=self.name, ttl=answer.ttl)

    def refresh_delay(self, snapshot: EndpointSet) -> float:
        return self._ttl_delay(snapshot.ttl)
