"""``ecsgrpc agent``: run the reference Workflow Agent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from ecsgrpc.config import ServerSettings, load
from ecsgrpc.logs import configure_logging
from ecsgrpc.server import serve
from ecsgrpc_apps.telemetry.setup import configure_from_env
from ecsgrpc_apps.workflow import emf
from ecsgrpc_apps.workflow.agent import WorkflowAgentServicer, agent_service
from ecsgrpc_apps.workflow.settings import AgentSettings


def agent(
    host: Annotated[
        str | None, typer.Option(help="Address to bind [env GRPC_HOST, default 0.0.0.0].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to bind [env GRPC_PORT, default 50051].")
    ] = None,
    instance_id: Annotated[
        str | None, typer.Option(help="Identity in served_by [env AGENT_INSTANCE_ID].")
    ] = None,
    drain_seconds: Annotated[
        float | None,
        typer.Option(
            help="Serve while NOT_SERVING after SIGTERM [env GRPC_DRAIN_SECONDS, default 5]."
        ),
    ] = None,
    grace_seconds: Annotated[
        float | None,
        typer.Option(
            help="Time for in-flight calls after the drain [env GRPC_GRACE_SECONDS, default 15]."
        ),
    ] = None,
    event_delay: Annotated[
        float | None,
        typer.Option(help="Delay before each event, seconds [env AGENT_EVENT_DELAY_SECONDS]."),
    ] = None,
    max_connection_age: Annotated[
        float | None,
        typer.Option(
            help="Close connections after this many seconds [env GRPC_MAX_CONNECTION_AGE_SECONDS]."
        ),
    ] = None,
    log_json: Annotated[
        bool | None, typer.Option("--log-json/--log-text", help="Log format [env GRPC_LOG_JSON].")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Certificate chain (PEM): serve TLS [env GRPC_TLS_CERT].")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="Private key (PEM) of --tls-cert [env GRPC_TLS_KEY].")
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option(help="CA (PEM) for client certificates: require mTLS [env GRPC_TLS_CA]."),
    ] = None,
) -> int:
    """Run the reference Workflow Agent (health, reflection, drain on SIGTERM).

    Caller authentication: set GRPC_AUTH_TOKEN or GRPC_AUTH_TOKEN_FILE (never a
    flag: flags show in process listings). See docs/security.md.
    """
    server_settings = load(
        ServerSettings,
        host=host,
        port=port,
        drain_seconds=drain_seconds,
        grace_seconds=grace_seconds,
        max_connection_age_seconds=max_connection_age,
        log_json=log_json,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_ca=tls_ca,
    )
    agent_settings = load(AgentSettings, instance_id=instance_id, event_delay_seconds=event_delay)
    servicer = WorkflowAgentServicer(agent_settings)
    configure_logging(
        instance_id=servicer.instance_id,
        json_lines=server_settings.log_json,
        level=server_settings.log_level,
    )
    # OpenTelemetry export as the OTEL_* variables say (otel extra).
    configure_from_env("workflow-agent", servicer.instance_id)
    return asyncio.run(_serve(servicer, agent_settings, server_settings))


async def _serve(
    servicer: WorkflowAgentServicer, settings: AgentSettings, server_settings: ServerSettings
) -> int:
    """Serve; with AGENT_METRICS_NAMESPACE also publish the in-flight count (EMF)."""
    publisher = None
    if settings.metrics_namespace is not None:
        publisher = asyncio.create_task(
            emf.publish(
                settings.metrics_namespace,
                emf.parse_dimensions(settings.metrics_dimensions),
                lambda: servicer.in_flight,
                interval=settings.metrics_interval_seconds,
            )
        )
    try:
        return await serve([agent_service(servicer)], settings=server_settings)
    finally:
        if publisher is not None:
            publisher.cancel()


def register(app: typer.Typer) -> None:
    app.command("agent")(agent)
