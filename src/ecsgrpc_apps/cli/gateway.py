"""``ecsgrpc gateway``: run the API Gateway (HTTP in front of the Workflow Agents)."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Annotated

import typer

from ecsgrpc.config import load
from ecsgrpc.logs import configure_logging
from ecsgrpc_apps.gateway.runner import run_gateway
from ecsgrpc_apps.gateway.settings import GatewaySettings
from ecsgrpc_apps.telemetry.setup import configure_from_env


def gateway(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (env GATEWAY_HOST, default 0.0.0.0).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to bind (env GATEWAY_PORT, default 8080).")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Agents' target, e.g. dns:///workflow-agent:50051 (env WORKFLOW_SERVICE_TARGET, "
            "else WORKFLOW_SERVICE_HOST/PORT, else Cloud Map)."
        ),
    ] = None,
    request_timeout: Annotated[
        float | None,
        typer.Option(help="Per-request deadline, seconds (env GATEWAY_REQUEST_TIMEOUT_SECONDS)."),
    ] = None,
    drain_seconds: Annotated[
        float | None,
        typer.Option(
            help="Serve with /readyz at 503 after SIGTERM (env GATEWAY_DRAIN_SECONDS, default 5)."
        ),
    ] = None,
    grace_seconds: Annotated[
        float | None,
        typer.Option(
            help="Time for in-flight requests after the drain (env GATEWAY_GRACE_SECONDS, "
            "default 15)."
        ),
    ] = None,
    log_json: Annotated[
        bool | None,
        typer.Option("--log-json/--log-text", help="Log format (env GATEWAY_LOG_JSON)."),
    ] = None,
) -> int:
    """Run the API Gateway: POST /v1/conversations (JSON or SSE), a chat page at /,
    /healthz, /readyz, /metrics, /debug/endpoints; drains on SIGTERM."""
    settings = load(
        GatewaySettings,
        host=host,
        port=port,
        request_timeout_seconds=request_timeout,
        drain_seconds=drain_seconds,
        grace_seconds=grace_seconds,
        log_json=log_json,
    )
    configure_logging(
        instance_id=f"gateway-{socket.gethostname()}-{os.getpid()}",
        json_lines=settings.log_json,
        level=settings.log_level,
    )
    # OpenTelemetry export as the OTEL_* variables say (otel extra).
    configure_from_env("api-gateway", None)
    return asyncio.run(run_gateway(settings, target=target))


def register(app: typer.Typer) -> None:
    app.command("gateway")(gateway)
