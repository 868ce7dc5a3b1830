"""``ecsgrpc gateway``: run the API Gateway (HTTP in front of the Workflow Agents)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
from typing import Any

from ecsgrpc.cli.base import CommandParser, add_version
from ecsgrpc.errors import ConfigError
from ecsgrpc.logs import configure_logging
from ecsgrpc_apps.cli.flags import SettingFlags, check_free
from ecsgrpc_apps.gateway.settings import GatewaySettings
from ecsgrpc_apps.settings import load
from ecsgrpc_apps.telemetry.setup import configure_from_env

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> CommandParser:
    parser: CommandParser = commands.add_parser(
        "gateway",
        help="Run the API Gateway (HTTP in front of the Workflow Agents).",
        description="Run the API Gateway: POST /v1/conversations (JSON or SSE), a chat page "
        "at /, /healthz, /readyz, /metrics, /debug/endpoints; drains on SIGTERM.",
        epilog="Exit codes: 0 drained and stopped, 1 forced stop or address in use, "
        "2 bad arguments or settings, 3 the server could not start.",
    )
    add_version(parser)
    flags = SettingFlags(parser)
    cls = GatewaySettings
    flags.add("--host", cls, "host", "Address to bind.")
    flags.add("--port", cls, "port", "Port to bind (0: any free port).")
    parser.add_argument(
        "--target",
        default=None,
        help="Agents' target, e.g. dns:///workflow-agent:50051 [env WORKFLOW_SERVICE_TARGET, "
        "else WORKFLOW_SERVICE_HOST/PORT, else Cloud Map].",
    )
    flags.add("--request-timeout", cls, "request_timeout_seconds", "Per-request deadline.")
    flags.add("--drain-seconds", cls, "drain_seconds", "Serve with /readyz at 503 after SIGTERM.")
    flags.add("--grace-seconds", cls, "grace_seconds", "Time for in-flight requests after it.")
    flags.add("--log-json", cls, "log_json", "Log one JSON object per line.", boolean=True)
    parser.set_defaults(run=run, setting_flags=flags)
    return parser


def run(args: argparse.Namespace) -> int:
    flags: SettingFlags = args.setting_flags
    values, names = flags.values(args, GatewaySettings)
    settings = load(GatewaySettings, given_as=names, **values)
    if args.target is not None:
        from ecsgrpc_apps.workflow.settings import check_target

        try:
            check_target(args.target)  # our targets, and xds:/// (gRPC's xDS client)
        except ValueError as exc:
            raise ConfigError(f"--target {args.target!r}: {exc}") from None
    if not settings.reuse_port:  # with SO_REUSEPORT, sharing the port is the point
        check_free(settings.host, settings.port)
    configure_logging(
        instance_id=f"gateway-{socket.gethostname()}-{os.getpid()}",
        json_lines=settings.log_json,
        level=settings.log_level,
    )
    # OpenTelemetry export as the OTEL_* variables say (otel extra).
    configure_from_env("api-gateway", None)
    from ecsgrpc_apps.gateway.connections import http_parser
    from ecsgrpc_apps.gateway.runner import event_loop_factory, run_gateway
    from ecsgrpc_apps.scheduling import apply_cpu_policy

    factory, name = event_loop_factory(settings.event_loop)
    http_parser(settings.http_parser)  # a parser that is not installed stops the start here
    gateway_log = logging.getLogger("ecsgrpc_apps.gateway")
    gateway_log.info("event loop: %s", name)
    # Before gRPC starts its threads: they inherit the policy (docs/gateway.md).
    gateway_log.info("cpu policy: %s", apply_cpu_policy(settings.cpu_policy))
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(run_gateway(settings, target=args.target))
