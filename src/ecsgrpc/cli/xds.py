"""``ecsgrpc xds serve|bootstrap``: the xDS control plane and its clients' bootstrap.

``serve`` runs the control plane for one or more ``--service NAME=TARGET``
(clients then call ``xds:///NAME``). ``bootstrap`` prints (or writes with
``--output``) a client's bootstrap JSON; on ECS its zone and node id come from
the task metadata endpoint. Both need the ``xds`` extra. See docs/xds.md.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from ecsgrpc.errors import ConfigError

__all__ = ["bootstrap_command", "register", "serve_command", "xds_app"]

xds_app = typer.Typer(
    name="xds",
    no_args_is_help=True,
    add_completion=False,
    help="Proxyless xDS: a control plane for xds:/// clients in any language.",
)

_EXTRA = "ecsgrpc xds needs the 'xds' extra: pip install 'ecsgrpc[xds]'"


def _require_extra() -> None:
    try:
        import envoy.service.discovery.v3.ads_pb2  # noqa: F401
    except ImportError:
        raise ConfigError(_EXTRA) from None


def serve_command(
    service: Annotated[
        list[str],
        typer.Option(
            "--service",
            help="NAME=TARGET, repeatable: clients call xds:///NAME, endpoints come from "
            "TARGET (cloudmap://, ecs://, dns:///, static:///).",
        ),
    ],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Port to bind (0: any).")] = 18000,
    lb: Annotated[str, typer.Option(help="Load balancing: round_robin or ring_hash.")] = (
        "round_robin"
    ),
    retry_on: Annotated[
        str, typer.Option(help="Status codes retried, comma-separated (gRFC A44); '' for none.")
    ] = "unavailable",
    retries: Annotated[int, typer.Option(help="Retries per call (0..4).")] = 2,
    timeout: Annotated[
        float | None, typer.Option(help="Maximum call duration in seconds (gRFC A31).")
    ] = None,
    outlier: Annotated[
        bool, typer.Option("--outlier/--no-outlier", help="Outlier detection (gRFC A50).")
    ] = True,
    rds: Annotated[
        bool, typer.Option("--rds/--inline-routes", help="Routes by RDS or inline in the listener.")
    ] = True,
    zone_priority: Annotated[
        bool,
        typer.Option("--zone-priority/--no-zone-priority", help="Clients prefer their own zone."),
    ] = True,
    probe: Annotated[
        bool,
        typer.Option(
            "--probe/--no-probe", help="Watch each endpoint's health (NOT_SERVING: DRAINING)."
        ),
    ] = True,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics over HTTP on this port.")
    ] = None,
    drain_seconds: Annotated[
        float, typer.Option(help="After SIGTERM: NOT_SERVING for this long, still serving.")
    ] = 5.0,
    grace_seconds: Annotated[
        float, typer.Option(help="Then: ADS streams end after at most this long.")
    ] = 1.0,
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
    log_json: Annotated[bool, typer.Option("--log-json/--log-text", help="Log format.")] = False,
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
    settings = load(
        ServerSettings,
        host=host,
        port=port,
        drain_seconds=drain_seconds,
        grace_seconds=grace_seconds,
        log_json=log_json,
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
    return asyncio.run(run_control_plane(services, settings=settings, probe=probe))


def bootstrap_command(
    server: Annotated[
        list[str],
        typer.Option(
            "--server",
            help="Control plane HOST:PORT, repeatable (replicas), or a DNS name resolving "
            "to all of them.",
        ),
    ],
    zone: Annotated[
        str | None,
        typer.Option(help="This client's availability zone [default: from ECS task metadata]."),
    ] = None,
    node_id: Annotated[
        str | None, typer.Option(help="Node id [default: the ECS task ARN, else HOST-PID].")
    ] = None,
    cluster: Annotated[str, typer.Option(help="Node cluster (free text, for logs).")] = "",
    tls_ca: Annotated[
        Path | None, typer.Option(help="CA (PEM) to verify the control plane: TLS.")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Client certificate (PEM) for mTLS.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Client private key (PEM) for mTLS.")] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Write the bootstrap to this file (for GRPC_XDS_BOOTSTRAP)."),
    ] = None,
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
        typer.echo(text)
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


xds_app.command("serve")(serve_command)
xds_app.command("bootstrap")(bootstrap_command)


def register(app: typer.Typer) -> None:
    app.add_typer(xds_app, name="xds")
