"""``ecsgrpc probe``: a grpc_health_probe drop-in for ECS container health checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ecsgrpc.health.probe import PROBE_TLS_FLAGS, ProbeResult, ProbeStatus, probe
from ecsgrpc.security.client_tls import ClientTls


def probe_command(
    address: Annotated[str, typer.Argument(metavar="HOST:PORT", help="Server to check.")],
    service: Annotated[str, typer.Option(help="Service name to check ('' = whole server).")] = "",
    timeout: Annotated[float, typer.Option(help="Seconds for connecting and for the check.")] = 1.0,
    tls: Annotated[bool, typer.Option("--tls", help="Connect with TLS.")] = False,
    tls_ca_cert: Annotated[
        Path | None, typer.Option(help="CA bundle to verify the server with (PEM; needs --tls).")
    ] = None,
    tls_client_cert: Annotated[
        Path | None, typer.Option(help="Client certificate for mTLS (PEM; needs --tls).")
    ] = None,
    tls_client_key: Annotated[
        Path | None, typer.Option(help="Client private key for mTLS (PEM; needs --tls).")
    ] = None,
    tls_server_name: Annotated[
        str | None, typer.Option(help="Name to verify in the server certificate (needs --tls).")
    ] = None,
) -> int:
    """Check a server's grpc.health.v1 status.

    Exit codes: 0 serving, 1 invalid arguments, 2 connection failure (or
    timeout, or TLS handshake failure), 3 RPC failure, 4 not serving.
    """
    given = [tls_ca_cert, tls_client_cert, tls_client_key, tls_server_name]
    if not tls and any(v is not None for v in given):
        flags = [f for f, v in zip(PROBE_TLS_FLAGS, given, strict=True) if v is not None]
        result = ProbeResult(
            ProbeStatus.INVALID_ARGUMENTS, f"{', '.join(flags)} given without --tls"
        )
    else:
        settings = (
            ClientTls(
                ca=tls_ca_cert,
                cert=tls_client_cert,
                key=tls_client_key,
                server_name=tls_server_name,
                names=PROBE_TLS_FLAGS,
            )
            if tls
            else None
        )
        result = probe(address, service=service, timeout=timeout, tls=settings)
    if result.status is ProbeStatus.SERVING:
        typer.echo(result.message)
    else:
        typer.echo(result.message, err=True)
    return int(result.status)


def register(app: typer.Typer) -> None:
    app.command("probe")(probe_command)
