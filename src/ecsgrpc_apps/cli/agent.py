"""``ecsgrpc agent``: run the reference Workflow Agent."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from ecsgrpc.cli.base import CommandParser, add_version
from ecsgrpc.config import ServerSettings, load
from ecsgrpc.logs import configure_logging
from ecsgrpc.server import serve
from ecsgrpc_apps.cli.flags import SettingFlags, check_free
from ecsgrpc_apps.scheduling import apply_cpu_policy
from ecsgrpc_apps.telemetry.setup import configure_from_env
from ecsgrpc_apps.workflow import emf
from ecsgrpc_apps.workflow.agent import WorkflowAgentServicer, agent_service
from ecsgrpc_apps.workflow.settings import AgentSettings

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> CommandParser:
    parser: CommandParser = commands.add_parser(
        "agent",
        help="Run the reference Workflow Agent.",
        description="Run the reference Workflow Agent (health, reflection, drain on SIGTERM). "
        "Caller authentication: set GRPC_AUTH_TOKEN or GRPC_AUTH_TOKEN_FILE (never a flag: "
        "flags show in process listings). See docs/security.md.",
        epilog="Exit codes: 0 drained and stopped, 1 forced stop or address in use, "
        "2 bad arguments or settings.",
    )
    add_version(parser)
    flags = SettingFlags(parser)
    server = ServerSettings
    flags.add("--host", server, "host", "Address to bind.")
    flags.add("--port", server, "port", "Port to bind (0: any free port).")
    flags.add("--instance-id", AgentSettings, "instance_id", "Identity in served_by.")
    flags.add("--drain-seconds", server, "drain_seconds", "Serve while NOT_SERVING after SIGTERM.")
    flags.add("--grace-seconds", server, "grace_seconds", "Time for in-flight calls after it.")
    flags.add("--event-delay", AgentSettings, "event_delay_seconds", "Delay before each event.")
    flags.add(
        "--max-connection-age",
        server,
        "max_connection_age_seconds",
        "Close connections after this many seconds.",
    )
    flags.add("--log-json", server, "log_json", "Log one JSON object per line.", boolean=True)
    flags.add("--tls-cert", server, "tls_cert", "Certificate chain (PEM): serve TLS.")
    flags.add("--tls-key", server, "tls_key", "Private key (PEM) of --tls-cert.")
    flags.add("--tls-ca", server, "tls_ca", "CA (PEM) for client certificates: require mTLS.")
    parser.set_defaults(run=run, setting_flags=flags)
    return parser


def run(args: argparse.Namespace) -> int:
    flags: SettingFlags = args.setting_flags
    server_values, server_names = flags.values(args, ServerSettings)
    agent_values, agent_names = flags.values(args, AgentSettings)
    server_settings = load(ServerSettings, given_as=server_names, **server_values)
    agent_settings = load(AgentSettings, given_as=agent_names, **agent_values)
    check_free(server_settings.host, server_settings.port)
    servicer = WorkflowAgentServicer(agent_settings)
    configure_logging(
        instance_id=servicer.instance_id,
        json_lines=server_settings.log_json,
        level=server_settings.log_level,
    )
    # OpenTelemetry export as the OTEL_* variables say (otel extra).
    configure_from_env("workflow-agent", servicer.instance_id)
    # Before gRPC starts its threads: they inherit the policy (docs/gateway.md).
    logging.getLogger("ecsgrpc_apps.workflow").info(
        "cpu policy: %s", apply_cpu_policy(agent_settings.cpu_policy)
    )
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
