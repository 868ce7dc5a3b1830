"""``host:port`` and ``static:///h1:p1,h2:p2``: a fixed list that never changes.

Where a fixed list is all there is, grpcio's native ``round_robin`` over an
``ipv4:`` target with ``healthCheckConfig`` is as good (docs/benchmarks.md); this
resolver exists so the same client code runs against a fixed list in
development (``WORKFLOW_SERVICE_HOST``/``PORT``) and a moving one in ECS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecsgrpc.endpoints import Endpoint, EndpointSet
from ecsgrpc.resolvers.options import ResolverOptions
from ecsgrpc.resolvers.polling import PollingResolver
from ecsgrpc.targets import StaticSpec

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["StaticResolver"]


class StaticResolver(PollingResolver):
    """Yields its one snapshot, then waits until closed."""

    def __init__(
        self,
        spec: StaticSpec,
        *,
        options: ResolverOptions | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        target = spec.target or ",".join(f"{h}:{p}" for h, p in spec.addresses)
        super().__init__("static", target, options=options, registry=registry)
        self._endpoints = tuple(Endpoint(host, port) for host, port in spec.addresses)

    async def _fetch(self) -> EndpointSet:
        return EndpointSet.of(self._endpoints, source=self.name)
