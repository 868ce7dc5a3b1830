"""The control plane process: catalog + ADS on an :class:`ecsgrpc.server.Server`.

It is one of our servers, so it has what they have (docs/security.md,
docs/operations.md): ``grpc.health.v1`` (the ADS service's own status is
NOT_SERVING until discovery has answered for every service), TLS or mTLS
from the same settings (``GRPC_TLS_CERT``/``GRPC_TLS_KEY``/``GRPC_TLS_CA``),
the SIGTERM drain (NOT_SERVING, then ADS streams end after the grace, so
clients reconnect to another replica: they keep their last configuration in
the meantime), and metrics (``ecsgrpc_xds_*`` and ``ecsgrpc_server_*``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from envoy.service.discovery.v3 import ads_pb2_grpc
from prometheus_client import CollectorRegistry

from ecsgrpc.config import ServerSettings
from ecsgrpc.security.client import ClientSecurity
from ecsgrpc.server import Server, ServiceSpec
from ecsgrpc.xds.ads import AdsServicer
from ecsgrpc.xds.catalog import Catalog
from ecsgrpc.xds.config import XdsService
from ecsgrpc.xds.metrics import xds_metrics

__all__ = ["ADS_SERVICE", "ControlPlane", "run_control_plane"]

ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
_log = logging.getLogger(__name__)


class ControlPlane:
    """An xDS control plane for ``services``; ``await start()``, ``await stop()``.

    ``settings``: the gRPC server's (address, TLS, drain); ``probe``: health
    watches on endpoints; ``probe_security``: the client TLS/mTLS those watches
    use to reach endpoints that serve TLS (None: plaintext; see
    :class:`~ecsgrpc.xds.catalog.Catalog`); ``resolver_options``: see
    ``build_resolver``.
    """

    def __init__(
        self,
        services: Sequence[XdsService],
        *,
        settings: ServerSettings,
        probe: bool = True,
        probe_security: ClientSecurity | None = None,
        registry: CollectorRegistry | None = None,
        resolver_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.metrics = xds_metrics(registry)
        self.catalog = Catalog(
            services,
            probe=probe,
            probe_security=probe_security,
            registry=registry,
            resolver_options=resolver_options,
        )
        self._ads = AdsServicer(self.catalog, self.metrics)
        self.server = Server(
            [
                ServiceSpec(
                    ADS_SERVICE,
                    lambda s: ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(
                        self._ads, s
                    ),
                )
            ],
            settings=settings,
            registry=registry,
        )
        self._ready_task: asyncio.Task[None] | None = None
        self._gauge_task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        return self.server.address

    async def start(self) -> int:
        """Start discovery and serving; returns the bound port."""
        await self.catalog.start()
        port = await self.server.start()
        await self.server.set_serving(False, ADS_SERVICE)
        loop = asyncio.get_running_loop()
        self._ready_task = loop.create_task(self._mark_ready())
        self._gauge_task = loop.create_task(self._export_gauges())
        return port

    async def _mark_ready(self) -> None:
        await self.catalog.wait_ready()
        await self.server.set_serving(True, ADS_SERVICE)
        _log.info("discovery answered for every service: %s serving", ADS_SERVICE)

    async def _export_gauges(self) -> None:
        generation = -1
        while True:
            snapshot = await self.catalog.wait_newer(generation)
            generation = snapshot.generation
            self.metrics.endpoints.clear()
            for name, views in snapshot.endpoints.items():
                for view in views:
                    self.metrics.endpoints.labels(name, view.health.name).inc()

    async def stop(self) -> None:
        """Drain (per the settings) and stop; then stop discovery."""
        await self.server.shutdown()
        await self._close()

    async def _close(self) -> None:
        for task in (self._ready_task, self._gauge_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.catalog.aclose()


async def run_control_plane(
    services: Sequence[XdsService],
    *,
    settings: ServerSettings,
    probe: bool = True,
    probe_security: ClientSecurity | None = None,
    registry: CollectorRegistry | None = None,
    on_started: Callable[[ControlPlane], None] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT, drain, stop; the process exit code (0, or 1 forced)."""
    plane = ControlPlane(
        services,
        settings=settings,
        probe=probe,
        probe_security=probe_security,
        registry=registry,
    )
    await plane.start()
    plane.server.install_signal_handlers()
    _log.info(
        "xds control plane serving on %s (%s) for %s",
        plane.address,
        plane.server.security.mode,
        ", ".join(f"{s.name}={s.target}" for s in services),
    )
    _log.info("health watches: %s", _probe_mode(probe, probe_security))
    if on_started is not None:
        on_started(plane)
    try:
        await plane.server.wait_stopped()
    finally:
        await plane._close()
    return 1 if plane.server.forced else 0


def _probe_mode(probe: bool, security: ClientSecurity | None) -> str:
    if not probe:
        return "off"
    tls = None if security is None else security.tls
    if tls is None:
        return "plaintext"
    return "mtls" if tls.cert is not None else "tls"
