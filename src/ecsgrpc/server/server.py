"""``serve()``: run any grpc.aio servicer the way ECS needs it.

Health (``grpc.health.v1``) and, when grpcio-reflection is installed,
reflection are registered, keepalive
enforcement admits this project's client keepalive, and SIGTERM starts a
drain (see :class:`ServerState`)::

    SERVING --SIGTERM--> DRAINING --drain_seconds--> STOPPING --in-flight done
        or grace_seconds--> STOPPED

While DRAINING, health reports NOT_SERVING (clients watching it move away at
once) but calls are still served, for clients that do not watch health. In
STOPPING no new call is accepted; in-flight calls get ``grace_seconds`` to end,
then are cancelled. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from prometheus_client import CollectorRegistry

from ecsgrpc.config import ServerSettings, load
from ecsgrpc.errors import BindError
from ecsgrpc.metrics import server_metrics
from ecsgrpc.server.interceptors import InFlightInterceptor
from ecsgrpc.server.lifecycle import ServerState, can_transition
from ecsgrpc.server.security import ServerSecurity, server_security

__all__ = ["Server", "ServerState", "ServiceSpec", "can_transition", "serve", "server_options"]

log = logging.getLogger(__name__)

HEALTH_SERVICE = "grpc.health.v1.Health"
# Services whose calls do not hold a drain open (long-lived watches).
_INFRA_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A service to host: its full name (``package.Service``) and how to add it.

    ``register`` is typically ``lambda s: add_FooServicer_to_server(servicer, s)``.
    """

    name: str
    register: Callable[[grpc.aio.Server], None]


def server_options(settings: ServerSettings) -> list[tuple[str, Any]]:
    """Channel args for the server: limits, keepalive enforcement, max age (gRFC A9)."""
    opts: list[tuple[str, Any]] = [
        # Never share a port with another process by accident.
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
        ("grpc.max_send_message_length", settings.max_send_message_bytes),
        # HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: calls beyond it wait at the client.
        ("grpc.max_concurrent_streams", settings.max_concurrent_streams),
        # Enforcement: accept client pings this often, even without calls, so a
        # client keepalive below the NLB idle timeout is never answered by a
        # too_many_pings GOAWAY.
        ("grpc.keepalive_permit_without_calls", 1),
        (
            "grpc.http2.min_ping_interval_without_data_ms",
            int(settings.min_ping_interval_seconds * 1000),
        ),
        ("grpc.http2.max_ping_strikes", 2),
        # Server pings idle clients too, to find half-open connections.
        ("grpc.keepalive_time_ms", 120_000),
        ("grpc.keepalive_timeout_ms", 20_000),
    ]
    if settings.max_connection_age_seconds is not None:
        opts.append(("grpc.max_connection_age_ms", int(settings.max_connection_age_seconds * 1000)))
        opts.append(("grpc.max_connection_age_grace_ms", int(settings.grace_seconds * 1000)))
    return opts


def _enable_reflection(names: Sequence[str], server: grpc.aio.Server) -> bool:
    """Serve grpc.reflection when grpcio-reflection is installed (it is not a
    core dependency: the ``agent`` extra brings it; see docs/architecture.md)."""
    try:
        from grpc_reflection.v1alpha import reflection
    except ImportError:
        log.debug("grpcio-reflection is not installed: no server reflection")
        return False
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
    return True


class Server:
    """One gRPC server with health, reflection and an ECS-friendly shutdown.

    Use from one event loop: ``await start()``, then ``await shutdown()`` (or let
    :meth:`install_signal_handlers` call it), then ``await wait_stopped()``.

    Security comes from ``settings`` (docs/security.md): TLS/mTLS files, a
    bearer token, the per-call deadline cap. The constructor reads those files
    and raises ConfigError naming the variable and file when one is bad.
    ``interceptors`` run after the built-in ones (metrics, token, deadline cap).
    """

    def __init__(
        self,
        services: Sequence[ServiceSpec],
        *,
        settings: ServerSettings | None = None,
        registry: CollectorRegistry | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        self._settings = settings or load(ServerSettings)
        self._services = tuple(services)
        self._metrics = server_metrics(registry)
        self._tracker = InFlightInterceptor(self._metrics, ignore_prefixes=_INFRA_PREFIXES)
        self._health = HealthServicer()
        self.security: ServerSecurity = server_security(self._settings)
        self._server = grpc.aio.server(
            interceptors=[self._tracker, *self.security.interceptors(), *interceptors],
            options=server_options(self._settings),
        )
        self._state = ServerState.CREATED
        self._port = 0
        self._stopped = asyncio.Event()
        self._shutdown_task: asyncio.Task[None] | None = None
        self.forced = False

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        host = self._settings.host
        return f"[{host}]:{self._port}" if ":" in host else f"{host}:{self._port}"

    @property
    def health(self) -> HealthServicer:
        return self._health

    def _move(self, new: ServerState) -> None:
        if not can_transition(self._state, new):
            raise RuntimeError(f"server cannot go from {self._state.value} to {new.value}")
        log.info(
            "server state %s -> %s", self._state.value, new.value, extra={"server_state": new.value}
        )
        self._state = new

    async def start(self) -> int:
        """Bind, register services, start serving; returns the bound port.

        Raises BindError (a ConfigError) when the address cannot be bound.
        """
        for spec in self._services:
            spec.register(self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = [s.name for s in self._services]
        _enable_reflection([*names, HEALTH_SERVICE], self._server)
        bind = f"[{self._settings.host}]" if ":" in self._settings.host else self._settings.host
        credentials = self.security.credentials()
        try:
            if credentials is None:
                self._port = self._server.add_insecure_port(f"{bind}:{self._settings.port}")
            else:
                self._port = self._server.add_secure_port(
                    f"{bind}:{self._settings.port}", credentials
                )
        except RuntimeError as exc:
            raise BindError(f"cannot listen on {bind}:{self._settings.port}: {exc}") from None
        await self._server.start()
        for name in ["", *names]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._move(ServerState.SERVING)
        return self._port

    async def set_serving(self, serving: bool, service: str = "") -> None:
        """Report a service (``""``: the whole server) SERVING or NOT_SERVING."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._health.set(service, status)

    def request_shutdown(self) -> None:
        """Begin the drain; a second request stops at once. Safe from a signal handler."""
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.get_running_loop().create_task(self.shutdown())
            return
        if self._state is not ServerState.STOPPED and not self.forced:
            log.warning("second stop signal: stopping now")
            self.forced = True
            self._shutdown_task.cancel()
            asyncio.get_running_loop().create_task(self._force_stop())

    async def _force_stop(self) -> None:
        if self._state in (ServerState.SERVING, ServerState.DRAINING):
            self._move(ServerState.STOPPING)
        await self._server.stop(None)
        if self._state is ServerState.STOPPING:
            self._move(ServerState.STOPPED)
        self._stopped.set()

    async def shutdown(self) -> None:
        """Drain, then stop (see the module docstring). Idempotent."""
        if self._state is ServerState.CREATED:
            self._move(ServerState.STOPPED)
            self._stopped.set()
            return
        if self._state is not ServerState.SERVING:
            await self._stopped.wait()
            return
        started = time.monotonic()
        self._move(ServerState.DRAINING)
        self._metrics.draining.set(1)
        await self._health.enter_graceful_shutdown()
        if self._settings.drain_seconds > 0:
            await asyncio.sleep(self._settings.drain_seconds)
        self._move(ServerState.STOPPING)
        await self._stop_within_grace()
        self._move(ServerState.STOPPED)
        self._metrics.draining.set(0)
        log.info(
            "stopped in %.2fs",
            time.monotonic() - started,
            extra={"shutdown_seconds": round(time.monotonic() - started, 3)},
        )
        self._stopped.set()

    async def _stop_within_grace(self) -> None:
        grace = self._settings.grace_seconds
        stopping = asyncio.ensure_future(self._server.stop(grace))
        # Health watches never end by themselves: once the application's own
        # calls are done, cancel them instead of waiting out the grace. (Not a
        # second stop(None) while stop(grace) runs: that crashed grpc.aio with
        # SIGSEGV in about half of the runs measured here.)
        idle = asyncio.ensure_future(self._tracker.wait_idle())
        done, _ = await asyncio.wait({stopping, idle}, return_when=asyncio.FIRST_COMPLETED)
        if idle in done:
            self._tracker.cancel_ignored()
        else:
            idle.cancel()
            left = self._tracker.in_flight
            if left:
                log.warning("grace period over: %d call(s) cancelled", left)
        await stopping

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("received %s", sig.name, extra={"signal": sig.name})
        self.request_shutdown()


async def serve(
    services: Sequence[ServiceSpec],
    *,
    settings: ServerSettings | None = None,
    registry: CollectorRegistry | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    on_started: Callable[[Server], None] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT, drain, and return the process exit code.

    0 after a complete drain, 1 when a second signal forced the stop. Raises
    ConfigError for bad settings or an address that cannot be bound.
    """
    server = Server(services, settings=settings, registry=registry, interceptors=interceptors)
    await server.start()
    server.install_signal_handlers()
    log.info(
        "serving on %s (%s%s)",
        server.address,
        server.security.mode,
        ", token auth" if server.security.auth is not None else "",
        extra={"address": server.address, "transport": server.security.mode},
    )
    if on_started is not None:
        on_started(server)
    await server.wait_stopped()
    return 1 if server.forced else 0
