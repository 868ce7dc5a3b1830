"""Health watches the control plane keeps on every endpoint, once for the fleet.

One ``grpc.health.v1.Health/Watch`` stream per endpoint address. What it says
becomes the endpoint's published health (see :mod:`ecsgrpc.xds.catalog`):

* ``SERVING``: the endpoint serves (HEALTHY, unless discovery says UNHEALTHY);
* ``NOT_SERVING`` (our servers say it from SIGTERM on, while they drain):
  DRAINING, so every client stops sending it new calls at the next push.
  It stays DRAINING when the endpoint then goes away, until discovery drops it
  or it says SERVING again;
* no answer (not reachable, no health service): unknown, discovery decides.
  Silence is left to the clients' own connection handling and outlier
  detection: the control plane never removes an endpoint only because *it*
  cannot reach it (a partition between it and one task must not empty a fleet).

Endpoints that serve TLS or mTLS are watched over TLS: give the prober a
:class:`~ecsgrpc.security.client.ChannelSecurity` (CA, client certificate and
key, server name: the same settings as any ecsgrpc client). Without one the
watches are plaintext, and a TLS endpoint's status stays unknown (its handshake
fails, so the watch never hears SERVING or NOT_SERVING).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecsgrpc.security.client import ChannelSecurity
from ecsgrpc.security.diagnose import explain_connect_error

__all__ = ["HealthProber", "ProbeStatus"]

_log = logging.getLogger(__name__)


class ProbeStatus(enum.Enum):
    SERVING = "serving"
    NOT_SERVING = "not_serving"


class HealthProber:
    """Watches ``addresses`` (``host:port``); calls ``on_change`` when a status changes.

    ``retry``: seconds between reconnection attempts to an endpoint that does not
    answer. ``security``: how to reach the endpoints (TLS/mTLS; None: plaintext);
    each new watch connection uses its current credentials (see
    :meth:`ChannelSecurity.refresh`). Use from one event loop; :meth:`aclose`
    stops every watch.
    """

    def __init__(
        self,
        on_change: Callable[[], None],
        *,
        retry: float = 1.0,
        security: ChannelSecurity | None = None,
    ) -> None:
        self._on_change = on_change
        self._retry = retry
        self._security = security
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._status: dict[str, ProbeStatus] = {}
        self._warned: dict[str, str] = {}  # address -> TLS hint logged (once per hint)

    def status(self, address: str) -> ProbeStatus | None:
        return self._status.get(address)

    def update(self, addresses: Iterable[str]) -> None:
        """Watch exactly ``addresses``: start new watches, stop vanished ones."""
        wanted = set(addresses)
        for address in list(self._tasks):
            if address not in wanted:
                self._tasks.pop(address).cancel()
                self._status.pop(address, None)
                self._warned.pop(address, None)
        for address in wanted - self._tasks.keys():
            self._tasks[address] = asyncio.get_running_loop().create_task(self._watch(address))

    def _set(self, address: str, status: ProbeStatus | None) -> None:
        old = self._status.get(address)
        if status is None:
            self._status.pop(address, None)
        else:
            self._status[address] = status
        if old is not status:
            self._on_change()

    async def _watch(self, address: str) -> None:
        request = health_pb2.HealthCheckRequest(service="")
        while True:
            channel = self._channel(address)
            try:
                stub = health_pb2_grpc.HealthStub(channel)
                async for reply in stub.Watch(request):
                    self._warned.pop(address, None)
                    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
                    self._set(address, ProbeStatus.SERVING if serving else ProbeStatus.NOT_SERVING)
            except grpc.aio.AioRpcError as exc:
                _log.debug("health watch of %s: %s", address, exc.code().name)
                self._warn_tls(address, exc)
            finally:
                await channel.close()
            # The stream ended: a drained endpoint stays NOT_SERVING; otherwise unknown.
            if self._status.get(address) is ProbeStatus.SERVING:
                self._set(address, None)
            await asyncio.sleep(self._retry)

    def _warn_tls(self, address: str, exc: grpc.aio.AioRpcError) -> None:
        """A TLS mismatch is a configuration fault, not a passing outage: say it
        (once per address and cause) so a fleet whose drains go unseen is noticed."""
        tls = self._security is not None and self._security.tls
        hint = explain_connect_error(exc.details() or "", tls=tls)
        if hint is None or self._warned.get(address) == hint:
            return
        self._warned[address] = hint
        _log.warning(
            "health watch of %s cannot connect: %s; its draining goes unseen "
            "(health watches of TLS endpoints: docs/xds.md)",
            address,
            hint,
        )

    def _channel(self, address: str) -> Any:
        options: list[tuple[str, Any]] = [("grpc.enable_retries", 0)]
        if self._security is None:
            return grpc.aio.insecure_channel(address, options=options)
        return self._security.new_channel(address, options)

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
