"""``ecsgrpc xds serve|bootstrap``: the xDS control plane and its clients' bootstrap.

``serve`` runs the control plane for one or more ``--service NAME=TARGET``
(clients then call ``xds:///NAME``); ``--probe-tls*`` say how its health
watches reach endpoints that serve TLS or mTLS. ``bootstrap`` prints (or writes with
``--output``) a client's bootstrap JSON; on ECS its zone and node id come from
the task metadata endpoint. Both need the ``xds`` extra. See docs/xds.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecsgrpc.cli.base import CommandParser, add_version
from ecsgrpc.errors import ConfigError

if TYPE_CHECKING:
    from ecsgrpc.security.client import ClientSecurity

__all__ = ["add_parser", "bootstrap_command", "serve_command"]

_EXTRA = "ecsgrpc xds needs the 'xds' extra: pip install 'ecsgrpc[xds]'"


def _require_extra() -> None:
    try:
        import envoy.service.discovery.v3.ads_pb2  # noqa: F401
    except ImportError:
        raise ConfigError(_EXTRA) from None


def add_parser(commands: Any) -> CommandParser:
    parser: CommandParser = commands.add_parser(
        "xds",
        help="Proxyless xDS: a control plane for xds:/// clients in any language.",
        description="Proxyless xDS: a control plane for xds:/// clients in any language "
        "(docs/xds.md).",
    )
    add_version(parser)
    sub = parser.add_subparsers(dest="xds_command", metavar="COMMAND", parser_class=CommandParser)
    _add_serve(sub)
    _add_bootstrap(sub)
    parser.set_defaults(run=lambda _args: _usage(parser))
    return parser


def _usage(parser: CommandParser) -> int:
    parser.print_help()
    return 2


def _add_serve(sub: Any) -> None:
    p: CommandParser = sub.add_parser(
        "serve",
        help="Run the xDS control plane (ADS, state of the world) until SIGTERM.",
        description="Run the xDS control plane (ADS, state of the world) until SIGTERM.",
    )
    add_version(p)
    p.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="NAME=TARGET",
        help="Repeatable: clients call xds:///NAME, endpoints come from TARGET "
        "(cloudmap://, ecs://, dns:///, static:///).",
    )
    p.add_argument("--host", default="0.0.0.0", help="Address to bind (default 0.0.0.0).")
    p.add_argument("--port", type=int, default=18000, help="Port to bind, 0: any (default 18000).")
    p.add_argument(
        "--lb", default="round_robin", help="Load balancing: round_robin (default) or ring_hash."
    )
    p.add_argument(
        "--retry-on",
        default="unavailable",
        help="Status codes retried, comma-separated (gRFC A44); '' for none (default unavailable).",
    )
    p.add_argument("--retries", type=int, default=2, help="Retries per call, 0-4 (default 2).")
    p.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="Maximum call duration (gRFC A31)."
    )
    p.add_argument(
        "--outlier",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Outlier detection (gRFC A50; default on).",
    )
    routes = p.add_mutually_exclusive_group()
    routes.add_argument(
        "--rds", dest="rds", action="store_true", default=True, help="Routes by RDS (default)."
    )
    routes.add_argument(
        "--inline-routes", dest="rds", action="store_false", help="Routes inline in the listener."
    )
    p.add_argument(
        "--zone-priority",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Clients prefer their own zone (default on).",
    )
    p.add_argument(
        "--probe",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Watch each endpoint's health; NOT_SERVING: DRAINING (default on).",
    )
    p.add_argument(
        "--probe-tls",
        action="store_true",
        default=None,
        help="Health watches use TLS, grpc's default roots [env WORKFLOW_SERVICE_TLS].",
    )
    p.add_argument(
        "--probe-tls-ca",
        type=Path,
        metavar="FILE",
        help="CA (PEM) of the endpoints' certificates: health watches use TLS "
        "[env WORKFLOW_SERVICE_TLS_CA].",
    )
    p.add_argument(
        "--probe-tls-cert",
        type=Path,
        metavar="FILE",
        help="Client certificate (PEM) the health watches present: mTLS "
        "[env WORKFLOW_SERVICE_TLS_CERT].",
    )
    p.add_argument(
        "--probe-tls-key",
        type=Path,
        metavar="FILE",
        help="Private key (PEM) of --probe-tls-cert [env WORKFLOW_SERVICE_TLS_KEY].",
    )
    p.add_argument(
        "--probe-tls-server-name",
        metavar="NAME",
        help="Name to verify in the endpoints' certificates (endpoints are IP addresses) "
        "[env WORKFLOW_SERVICE_TLS_SERVER_NAME].",
    )
    p.add_argument("--metrics-port", type=int, help="Serve Prometheus metrics over HTTP here.")
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=5.0,
        help="After SIGTERM: NOT_SERVING for this long, still serving (default 5).",
    )
    p.add_argument(
        "--grace-seconds",
        type=float,
        default=1.0,
        help="Then: ADS streams end after at most this long (default 1).",
    )
    p.add_argument(
        "--tls-cert", type=Path, help="Certificate chain (PEM): serve TLS [env GRPC_TLS_CERT]."
    )
    p.add_argument(
        "--tls-key", type=Path, help="Private key (PEM) of --tls-cert [env GRPC_TLS_KEY]."
    )
    p.add_argument(
        "--tls-ca",
        type=Path,
        help="CA (PEM) for client certificates: require mTLS [env GRPC_TLS_CA].",
    )
    p.add_argument("--log-json", action="store_true", help="Log one JSON object per line.")
    p.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    return serve_command(
        service=args.service,
        host=args.host,
        port=args.port,
        lb=args.lb,
        retry_on=args.retry_on,
        retries=args.retries,
        timeout=args.timeout,
        outlier=args.outlier,
        rds=args.rds,
        zone_priority=args.zone_priority,
        probe=args.probe,
        probe_tls=args.probe_tls,
        probe_tls_ca=args.probe_tls_ca,
        probe_tls_cert=args.probe_tls_cert,
        probe_tls_key=args.probe_tls_key,
        probe_tls_server_name=args.probe_tls_server_name,
        metrics_port=args.metrics_port,
        drain_seconds=args.drain_seconds,
        grace_seconds=args.grace_seconds,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
        log_json=args.log_json,
    )


def _add_bootstrap(sub: Any) -> None:
    p: CommandParser = sub.add_parser(
        "bootstrap",
        help="Print a client bootstrap (the value of GRPC_XDS_BOOTSTRAP_CONFIG).",
        description="Print a client bootstrap (the value of GRPC_XDS_BOOTSTRAP_CONFIG).",
    )
    add_version(p)
    p.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="Control plane, repeatable (replicas), or a DNS name resolving to all of them.",
    )
    p.add_argument("--zone", help="This client's availability zone [default: ECS task metadata].")
    p.add_argument("--node-id", help="Node id [default: the ECS task ARN, else HOST-PID].")
    p.add_argument("--cluster", default="", help="Node cluster (free text, for logs).")
    p.add_argument("--tls-ca", type=Path, help="CA (PEM) to verify the control plane: TLS.")
    p.add_argument("--tls-cert", type=Path, help="Client certificate (PEM) for mTLS.")
    p.add_argument("--tls-key", type=Path, help="Client private key (PEM) for mTLS.")
    p.add_argument("--output", type=Path, help="Write the bootstrap to this file.")
    p.set_defaults(run=_run_bootstrap)


def _run_bootstrap(args: argparse.Namespace) -> int:
    return bootstrap_command(
        server=args.server,
        zone=args.zone,
        node_id=args.node_id,
        cluster=args.cluster,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        output=args.output,
    )


def serve_command(
    *,
    service: list[str],
    host: str,
    port: int,
    lb: str,
    retry_on: str,
    retries: int,
    timeout: float | None,
    outlier: bool,
    rds: bool,
    zone_priority: bool,
    probe: bool,
    metrics_port: int | None,
    probe_tls: bool | None = None,
    probe_tls_ca: Path | None = None,
    probe_tls_cert: Path | None = None,
    probe_tls_key: Path | None = None,
    probe_tls_server_name: str | None = None,
    drain_seconds: float,
    grace_seconds: float,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_ca: Path | None,
    log_json: bool,
) -> int:
    """Run the xDS control plane (ADS, state of the world) until SIGTERM."""
    _require_extra()
    from ecsgrpc.config import ServerSettings, load
    from ecsgrpc.logs import configure_logging
    from ecsgrpc.xds.config import OutlierPolicy, RetryPolicy, parse_service
    from ecsgrpc.xds.server import run_control_plane

    if not service:
        raise ConfigError("give at least one --service NAME=TARGET")
    codes = tuple(c.strip() for c in retry_on.split(",") if c.strip())
    try:
        retry = RetryPolicy(retry_on=codes, num_retries=retries) if codes and retries else None
    except ConfigError as exc:
        raise ConfigError(f"--retry-on/--retries: {exc}") from None
    services = []
    for text in service:
        try:
            services.append(
                parse_service(
                    text,
                    lb_policy=lb,
                    retry=retry,
                    outlier=OutlierPolicy() if outlier else None,
                    timeout=timeout,
                    rds=rds,
                    zone_priority=zone_priority,
                )
            )
        except ConfigError as exc:
            raise ConfigError(f"--service {text!r}: {exc}") from None
    probe_security = _probe_security(
        probe,
        tls=probe_tls,
        tls_ca=probe_tls_ca,
        tls_cert=probe_tls_cert,
        tls_key=probe_tls_key,
        tls_server_name=probe_tls_server_name,
    )
    flags = ("host", "port", "drain_seconds", "grace_seconds", "tls_cert", "tls_key", "tls_ca")
    settings = load(
        ServerSettings,
        given_as={name: "--" + name.replace("_", "-") for name in flags},
        host=host,
        port=port,
        drain_seconds=drain_seconds,
        grace_seconds=grace_seconds,
        log_json=log_json or None,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_ca=tls_ca,
    )
    configure_logging(
        instance_id=os.environ.get("HOSTNAME", "xds"),
        json_lines=settings.log_json,
        level=settings.log_level,
    )
    if metrics_port is not None:
        from prometheus_client import start_http_server

        try:
            start_http_server(metrics_port, addr=host)
        except OSError as exc:
            raise ConfigError(f"--metrics-port {metrics_port}: {exc}") from None
    return asyncio.run(
        run_control_plane(services, settings=settings, probe=probe, probe_security=probe_security)
    )


def _probe_security(probe: bool, **given: Any) -> ClientSecurity | None:
    """The client TLS of the health watches: each ``--probe-tls*`` flag, else
    the Workflow client's variable (``WORKFLOW_SERVICE_TLS*``). The files are
    read now: a bad one is a ConfigError naming the flag (or variable) and file."""
    from ecsgrpc.envreader import env_names, load
    from ecsgrpc.security.client import ClientSecurity
    from ecsgrpc.security.client_tls import ClientTls
    from ecsgrpc.security.settings import ClientSecuritySettings

    flags = {name: "--probe-" + name.replace("_", "-") for name in given}
    typed = [flags[name] for name, value in given.items() if value is not None]
    if not probe:
        if typed:
            raise ConfigError(f"{typed[0]} given with --no-probe (no health watches)")
        return None
    # Only the TLS variables: the health service is open, no token is sent.
    variables = env_names(ClientSecuritySettings)
    env = {variables[name]: os.environ.get(variables[name], "") for name in given}
    settings = load(ClientSecuritySettings, env=env, given_as=flags, **given)
    if not settings.tls and all(getattr(settings, n) is None for n in given if n != "tls"):
        return None

    def label(name: str) -> str:
        from_env = given[name] is None and env[variables[name]]
        return variables[name] if from_env else flags[name]

    tls = ClientTls(
        ca=settings.tls_ca,
        cert=settings.tls_cert,
        key=settings.tls_key,
        server_name=settings.tls_server_name,
        names=(
            label("tls_ca"),
            label("tls_cert"),
            label("tls_key"),
            label("tls_server_name"),
        ),
    )
    tls.load()
    return ClientSecurity(tls=tls)


def bootstrap_command(
    *,
    server: list[str],
    zone: str | None,
    node_id: str | None,
    cluster: str,
    tls_ca: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    output: Path | None,
) -> int:
    """Print a client bootstrap (the value of GRPC_XDS_BOOTSTRAP_CONFIG)."""
    from ecsgrpc.xds.bootstrap import bootstrap_json

    text = bootstrap_json(
        server,
        zone=zone,
        node_id=node_id,
        cluster=cluster,
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    if output is None:
        print(text)
        return 0
    try:
        # Write then rename: a client starting meanwhile never reads half a file.
        with tempfile.NamedTemporaryFile(
            "w", dir=output.parent, prefix=f".{output.name}.", delete=False
        ) as tmp:
            tmp.write(text + "\n")
        Path(tmp.name).replace(output)
    except OSError as exc:
        raise ConfigError(f"--output {str(output)!r}: {exc.strerror or exc}") from None
    return 0
