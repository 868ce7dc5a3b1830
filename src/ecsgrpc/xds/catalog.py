"""The fleet's view of every service: one resolver watch per service, shared by
every subscribed client, published as immutable snapshots.

Each service's resolver (``build_resolver(target)``) is watched once; each
answer, and each change of an endpoint's health watch, makes a new
:class:`CatalogSnapshot` with a higher ``generation``. ADS streams wait on
:meth:`Catalog.wait_newer` and push what changed for their client. Load
assignments are built once per (service, client zone, generation), so a change
costs one build per zone, not one per client.

Published health (gRFC A42 statuses): discovery's HEALTHY/UNHEALTHY/UNKNOWN,
overridden by the control plane's own health watch (SERVING: HEALTHY;
NOT_SERVING: DRAINING). Like Cloud Map's ``HEALTHY_OR_ELSE_ALL``, when
discovery marks every endpoint of a service UNHEALTHY they are published
UNKNOWN rather than leaving clients nothing (DRAINING ones stay DRAINING).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from google.protobuf import any_pb2
from prometheus_client import CollectorRegistry

from ecsgrpc.endpoints import EndpointSet
from ecsgrpc.errors import ConfigError
from ecsgrpc.resolvers.base import Resolver
from ecsgrpc.resolvers.registry import build_resolver
from ecsgrpc.security.client import ChannelSecurity, ClientSecurity
from ecsgrpc.xds.config import XdsService
from ecsgrpc.xds.probes import HealthProber, ProbeStatus
from ecsgrpc.xds.resources import (
    EndpointHealth,
    EndpointView,
    load_assignment,
    pack,
    source_health,
)

__all__ = ["Catalog", "CatalogSnapshot", "publish_health"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CatalogSnapshot:
    """Endpoints per service name, for the services discovery has answered for."""

    generation: int
    endpoints: Mapping[str, tuple[EndpointView, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )


def publish_health(
    snapshot: EndpointSet, probe: Mapping[str, ProbeStatus]
) -> tuple[EndpointView, ...]:
    """What clients see of one service's snapshot, given the health watches (pure)."""
    views = []
    for ep in snapshot:
        health = source_health(ep)
        status = probe.get(ep.address)
        if status is ProbeStatus.NOT_SERVING:
            health = EndpointHealth.DRAINING
        elif status is ProbeStatus.SERVING and health is not EndpointHealth.UNHEALTHY:
            health = EndpointHealth.HEALTHY
        views.append(EndpointView(ep.host, ep.port, ep.zone or "", health, ep.weight))
    if views and all(v.health is EndpointHealth.UNHEALTHY for v in views):
        views = [
            EndpointView(v.host, v.port, v.zone, EndpointHealth.UNKNOWN, v.weight) for v in views
        ]
    return tuple(views)


class Catalog:
    """Watches every service's target and publishes snapshots.

    ``probe``: keep a health watch on every endpoint (see :mod:`ecsgrpc.xds.probes`).
    ``probe_security``: how those watches reach endpoints that serve TLS/mTLS
    (None: plaintext). Its files are read here (ConfigError naming the setting
    and file) and re-checked, off the event loop, at each discovery answer: new
    watch connections use the current files.
    ``resolver_options``: passed to :func:`~ecsgrpc.resolvers.registry.build_resolver`.
    Use from one event loop: ``await start()`` ... ``await aclose()``.
    """

    def __init__(
        self,
        services: Sequence[XdsService],
        *,
        probe: bool = True,
        probe_security: ClientSecurity | None = None,
        registry: CollectorRegistry | None = None,
        resolver_options: Mapping[str, Any] | None = None,
    ) -> None:
        names = [s.name for s in services]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ConfigError(f"service {sorted(dupes)[0]!r} is given twice")
        self.services: Mapping[str, XdsService] = MappingProxyType({s.name: s for s in services})
        self._registry = registry
        self._options = dict(resolver_options or {})
        self._security = (
            ChannelSecurity(probe_security)
            if probe and probe_security is not None and probe_security.enabled
            else None
        )
        self._prober = HealthProber(self._republish, security=self._security) if probe else None
        self._sets: dict[str, EndpointSet] = {}
        self._snapshot = CatalogSnapshot(0)
        self._changed = asyncio.Event()
        self._resolvers: list[Resolver] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._assignments: dict[tuple[str, str | None], any_pb2.Any] = {}
        self._assignments_generation = 0
        self._ready = asyncio.Event()

    @property
    def snapshot(self) -> CatalogSnapshot:
        return self._snapshot

    @property
    def ready(self) -> bool:
        """Every service has had a first answer from discovery."""
        return self._ready.is_set()

    async def wait_ready(self, timeout: float | None = None) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self._ready.is_set()

    async def start(self) -> None:
        for service in self.services.values():
            resolver = build_resolver(service.target, registry=self._registry, **self._options)
            self._resolvers.append(resolver)
            task = asyncio.get_running_loop().create_task(self._follow(service.name, resolver))
            self._tasks.append(task)

    async def _follow(self, name: str, resolver: Resolver) -> None:
        async for endpoint_set in resolver.watch():
            self._sets[name] = endpoint_set
            if self._security is not None:
                await self._security.refresh()
            if self._prober is not None:
                self._prober.update({ep.address for s in self._sets.values() for ep in s})
            self._republish()
            if len(self._sets) == len(self.services):
                self._ready.set()

    def _republish(self) -> None:
        status: dict[str, ProbeStatus] = {}
        if self._prober is not None:
            for endpoint_set in self._sets.values():
                for ep in endpoint_set:
                    found = self._prober.status(ep.address)
                    if found is not None:
                        status[ep.address] = found
        endpoints = {name: publish_health(s, status) for name, s in self._sets.items()}
        if endpoints == dict(self._snapshot.endpoints):
            return
        self._snapshot = CatalogSnapshot(
            self._snapshot.generation + 1, MappingProxyType(dict(sorted(endpoints.items())))
        )
        _log.info(
            "generation %d: %s",
            self._snapshot.generation,
            ", ".join(f"{n}={len(v)}" for n, v in self._snapshot.endpoints.items()),
        )
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_newer(self, generation: int) -> CatalogSnapshot:
        """The first snapshot with a generation above ``generation``."""
        while self._snapshot.generation <= generation:
            await self._changed.wait()
        return self._snapshot

    def assignment(self, name: str, client_zone: str | None) -> any_pb2.Any | None:
        """Service ``name``'s load assignment (packed) for a client in ``client_zone``,
        or None before discovery answered. Cached per (name, zone) for the current
        generation: 200 clients in 3 zones cost 3 builds per change."""
        snapshot = self._snapshot
        views = snapshot.endpoints.get(name)
        if views is None:
            return None
        if self._assignments_generation != snapshot.generation:
            self._assignments.clear()
            self._assignments_generation = snapshot.generation
        service = self.services[name]
        zone = client_zone if service.zone_priority else None
        key = (name, zone)
        found = self._assignments.get(key)
        if found is None:
            found = self._assignments[key] = pack(load_assignment(name, views, zone))
        return found

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._prober is not None:
            await self._prober.aclose()
        for resolver in self._resolvers:
            await resolver.aclose()
        self._resolvers.clear()
