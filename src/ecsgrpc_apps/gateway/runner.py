"""Run the gateway: a WorkflowClient, the app, and uvicorn with a SIGTERM drain."""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from collections.abc import Callable

import uvicorn
from prometheus_client import REGISTRY, CollectorRegistry

from ecsgrpc.errors import ConfigError
from ecsgrpc.metrics import gateway_metrics
from ecsgrpc_apps.gateway.app import GatewayApp, create_app
from ecsgrpc_apps.gateway.connections import (
    ConnectionLimits,
    connection_cap,
    guarded_protocol,
    http_parser,
    raise_open_files_limit,
    rate_limited_accept_errors,
)
from ecsgrpc_apps.gateway.lifecycle import GatewayServer, Lifecycle
from ecsgrpc_apps.gateway.settings import GatewaySettings
from ecsgrpc_apps.workflow.client import WorkflowClient

__all__ = [
    "STARTUP_FAILED",
    "event_loop_factory",
    "reuse_port_socket",
    "run_gateway",
    "uvicorn_config",
]

STARTUP_FAILED = 3

log = logging.getLogger(__name__)


def uvicorn_config(
    app: GatewayApp, settings: GatewaySettings, *, open_files: int | None = None
) -> uvicorn.Config:
    """uvicorn's settings for the gateway: our logging, our lifespan, the grace period,
    and the connection limits (:mod:`ecsgrpc_apps.gateway.connections`).

    ``open_files``: the open-files soft limit the connection cap must stay under.
    Raises ConfigError when ``settings.http_parser`` is ``httptools`` and it is
    not installed.
    """
    cap = settings.max_connections
    if open_files is not None:
        cap = connection_cap(cap, open_files)
    limits = ConnectionLimits(
        max_connections=cap,
        max_header_count=settings.max_header_count,
        max_head_bytes=settings.max_head_bytes,
        head_timeout_seconds=settings.head_timeout_seconds,
    )
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,
        access_log=settings.access_log,
        timeout_graceful_shutdown=math.ceil(settings.grace_seconds),
        timeout_keep_alive=settings.keep_alive_seconds,  # type: ignore[arg-type]
        server_header=False,
        http=guarded_protocol(
            limits, app.front.overload, app.front, parser=http_parser(settings.http_parser)
        ),
        backlog=4096,
    )


def event_loop_factory(
    choice: str,
) -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """The loop factory for ``GATEWAY_EVENT_LOOP`` (``auto``, ``asyncio``, ``uvloop``) and its name.

    ``auto`` is uvloop when it is installed (the ``uvloop`` extra), else asyncio's
    own loop (factory None). Raises ConfigError for ``uvloop`` when it is not installed.
    """
    if choice == "asyncio":
        return None, "asyncio"
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(
                "GATEWAY_EVENT_LOOP='uvloop': uvloop is not installed "
                "(pip install 'ecsgrpc[uvloop]')"
            ) from None
        return None, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket with SO_REUSEPORT: N gateway processes on one port, one per core.

    Linux hashes each new connection to one of the sockets sharing the port.
    Raises OSError when the port is held by a socket without SO_REUSEPORT.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


async def run_gateway(
    settings: GatewaySettings,
    *,
    target: str | None = None,
    registry: CollectorRegistry | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT, drain, and return the process exit code.

    0 after a complete drain, 1 when a second signal forced the stop, 3 when
    the server could not start. ``target`` defaults to the environment's
    (``WORKFLOW_SERVICE_TARGET``, ...). Raises ConfigError for a bad target.
    """
    registry = REGISTRY if registry is None else registry
    log.info("http parser: %s", http_parser(settings.http_parser))
    soft, hard = raise_open_files_limit()
    log.info("open-files limit %d (hard %d)", soft, hard)
    rate_limited_accept_errors(asyncio.get_running_loop())
    client = WorkflowClient(target, timeout=settings.request_timeout_seconds, registry=registry)
    try:
        lifecycle = Lifecycle(gateway_metrics(registry))
        app = create_app(client, settings, registry=registry, lifecycle=lifecycle)
        server = GatewayServer(
            uvicorn_config(app, settings, open_files=soft),
            lifecycle=lifecycle,
            drain_seconds=settings.drain_seconds,
            freeze_gc=True,
        )
        sockets = None
        if settings.reuse_port:
            try:
                sockets = [reuse_port_socket(settings.host, settings.port)]
            except OSError as exc:
                log.error(  # noqa: TRY400 (one line, no traceback)
                    "cannot listen on %s:%d: %s", settings.host, settings.port, exc.strerror
                )
                return STARTUP_FAILED
        await server.serve(sockets)
    finally:
        await client.aclose()
    if not server.started:
        return STARTUP_FAILED
    return server.exit_code
