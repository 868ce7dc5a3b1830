"""Run the gateway: a WorkflowClient, the app, and uvicorn with a SIGTERM drain."""

from __future__ import annotations

import math

import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry

from ecsgrpc.metrics import gateway_metrics
from ecsgrpc_apps.gateway.app import create_app
from ecsgrpc_apps.gateway.lifecycle import GatewayServer, Lifecycle
from ecsgrpc_apps.gateway.settings import GatewaySettings
from ecsgrpc_apps.workflow.client import WorkflowClient

__all__ = ["STARTUP_FAILED", "run_gateway", "uvicorn_config"]

STARTUP_FAILED = 3


def uvicorn_config(app: FastAPI, settings: GatewaySettings) -> uvicorn.Config:
    """uvicorn's settings for the gateway: our logging, our lifespan, the grace period."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,
        access_log=settings.access_log,
        timeout_graceful_shutdown=math.ceil(settings.grace_seconds),
        server_header=False,
    )


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
    client = WorkflowClient(target, timeout=settings.request_timeout_seconds, registry=registry)
    try:
        lifecycle = Lifecycle(gateway_metrics(registry))
        app = create_app(client, settings, registry=registry, lifecycle=lifecycle)
        server = GatewayServer(
            uvicorn_config(app, settings),
            lifecycle=lifecycle,
            drain_seconds=settings.drain_seconds,
        )
        await server.serve()
    finally:
        await client.aclose()
    if not server.started:
        return STARTUP_FAILED
    return server.exit_code
