"""``ecsgrpc probe``: a grpc_health_probe drop-in for ECS container health checks."""

from __future__ import annotations

from typing import Annotated

import typer

from ecsgrpc.health.probe import ProbeStatus, probe


def probe_command(
    address: Annotated[str, typer.Argument(metavar="HOST:PORT", help="Server to check.")],
    service: Annotated[str, typer.Option(help="Service name to check ('' = whole server).")] = "",
    timeout: Annotated[float, typer.Option(help="Seconds for connecting and for the check.")] = 1.0,
) -> int:
    """Check a server's grpc.health.v1 status.

    Exit codes: 0 serving, 1 invalid arguments, 2 connection failure (or
    timeout), 3 RPC failure, 4 not serving.
    """
    result = probe(address, service=service, timeout=timeout)
    if result.status is ProbeStatus.SERVING:
        typer.echo(result.message)
    else:
        typer.echo(result.message, err=True)
    return int(result.status)


def register(app: typer.Typer) -> None:
    app.command("probe")(probe_command)
