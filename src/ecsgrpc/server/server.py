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
from ecsgrpc.telemetry import Telemetry
from ecsgrpc.telemetry import resolve as resolve_telemetry

__all__ = ["Server", "ServerState", "ServiceSpec", "can_transition", "serve", "server_options"]

# The name users configure (and tests read): the server package, not this module.
log = logging.getLogger("ecsgrpc.server")


class _Announcer:
    """The start, drain and stop lines of :func:`serve`, seen without any setup.

    Through ``log`` at INFO when the application configured logging (a handler
    on ``ecsgrpc.server`` or an ancestor it propagates to: it decides what is
    shown); else straight to stderr, one line each, as ``logging.lastResort``
    would but at INFO. The choice is made per line, so configuring logging
    after ``serve()`` started is honoured.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._fallback = logging.StreamHandler()  # sys.stderr
        self._fallback.setFormatter(
            logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
        )
        self.enabled = False

    def __call__(self, level: int, msg: str, *args: object, extra: dict[str, Any]) -> None:
        if not self.enabled or self._log.hasHandlers():
            self._log.log(level, msg, *args, extra=extra, stacklevel=2)
            return
        if self._log.disabled:
            return
        record = self._log.makeRecord(
            self._log.name, level, __file__, 0, msg, args, None, extra=extra
        )
        self._fallback.handle(record)


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

    ``telemetry``: OpenTelemetry SERVER spans parented by the caller's
    ``traceparent`` and gRFC A66 server metrics (:mod:`ecsgrpc.telemetry`);
    None: on when opentelemetry-api is installed; False: off. Health and
    reflection calls are not traced.
    """

    def __init__(
        self,
        services: Sequence[ServiceSpec],
        *,
        settings: ServerSettings | None = None,
        registry: CollectorRegistry | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        telemetry: Telemetry | bool | None = None,
    ) -> None:
        self._settings = settings or load(ServerSettings)
        self._services = tuple(services)
        self._metrics = server_metrics(registry)
        self._tracker = InFlightInterceptor(self._metrics, ignore_prefixes=_INFRA_PREFIXES)
        self._health = HealthServicer()
        self.security: ServerSecurity = server_security(self._settings)
        chosen = resolve_telemetry(telemetry)
        self._tracing: Any = None
        if chosen is not None:
            from ecsgrpc.telemetry.server import TracingInterceptor  # opentelemetry-api

            self._tracing = TracingInterceptor(chosen, ignore_prefixes=_INFRA_PREFIXES)
        first = [] if self._tracing is None else [self._tracing]
        self._server = grpc.aio.server(
            interceptors=[*first, self._tracker, *self.security.interceptors(), *interceptors],
            options=server_options(self._settings),
        )
        self._state = ServerState.CREATED
        self._announce = _Announcer(log)
        self._signal: str | None = None
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
        log.debug(
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
        if self._tracing is not None:
            self._tracing.set_local_address(self.address)
        for name in ["", *names]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._move(ServerState.SERVING)
        self._announce(
            logging.INFO,
            "serving on %s (%s%s)",
            self.address,
            self.security.mode,
            ", token auth" if self.security.auth is not None else "",
            extra={"event": "serving", "address": self.address, "transport": self.security.mode},
        )
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
            self._announce(
                logging.WARNING,
                "stopped at once (second stop signal)",
                extra={"event": "stopped", "forced": True},
            )
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
        self._announce(
            logging.INFO,
            "%sdraining: health NOT_SERVING, serving %gs more, then up to %gs for in-flight calls",
            f"received {self._signal}: " if self._signal else "",
            self._settings.drain_seconds,
            self._settings.grace_seconds,
            extra={
                "event": "draining",
                "signal": self._signal or "",
                "drain_seconds": self._settings.drain_seconds,
                "grace_seconds": self._settings.grace_seconds,
            },
        )
        self._metrics.draining.set(1)
        await self._health.enter_graceful_shutdown()
        if self._settings.drain_seconds > 0:
            await asyncio.sleep(self._settings.drain_seconds)
        self._move(ServerState.STOPPING)
        cancelled = await self._stop_within_grace()
        self._move(ServerState.STOPPED)
        self._metrics.draining.set(0)
        took = time.monotonic() - started
        self._announce(
            logging.INFO,
            "stopped in %.2fs%s",
            took,
            f" ({cancelled} call(s) cancelled at the end of the grace period)" if cancelled else "",
            extra={"event": "stopped", "shutdown_seconds": round(took, 3), "cancelled": cancelled},
        )
        self._stopped.set()

    async def _stop_within_grace(self) -> int:
        """Stop; returns how many application calls the end of the grace cancelled."""
        grace = self._settings.grace_seconds
        stopping = asyncio.ensure_future(self._server.stop(grace))
        # Health watches never end by themselves: once the application's own
        # calls are done, cancel them instead of waiting out the grace. (Not a
        # second stop(None) while stop(grace) runs: that crashed grpc.aio with
        # SIGSEGV in about half of the runs measured here.)
        idle = asyncio.ensure_future(self._tracker.wait_idle())
        done, _ = await asyncio.wait({stopping, idle}, return_when=asyncio.FIRST_COMPLETED)
        left = 0
        if idle in done:
            self._tracker.cancel_ignored()
        else:
            idle.cancel()
            left = self._tracker.in_flight
        await stopping
        return left

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._signal is None:
            self._signal = sig.name
        self.request_shutdown()


async def serve(
    services: Sequence[ServiceSpec],
    *,
    settings: ServerSettings | None = None,
    registry: CollectorRegistry | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    on_started: Callable[[Server], None] | None = None,
    telemetry: Telemetry | bool | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT, drain, and return the process exit code.

    0 after a complete drain, 1 when a second signal forced the stop. Raises
    ConfigError for bad settings or an address that cannot be bound.

    Three lines tell the lifecycle: ``serving on HOST:PORT (...)`` once bound,
    ``draining: ...`` when the stop signal arrives, ``stopped in N.NNs`` at the
    end. They go to the ``ecsgrpc.server`` logger at INFO when the application
    configured logging, else straight to stderr (no setup needed to see them).
    """
    server = Server(
        services,
        settings=settings,
        registry=registry,
        interceptors=interceptors,
        telemetry=telemetry,
    )
    server._announce.enabled = True
    await server.start()
    server.install_signal_handlers()
    if on_started is not None:
        on_started(server)
    await server.wait_stopped()
    return 1 if server.forced else 0
