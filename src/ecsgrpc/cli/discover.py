"""``ecsgrpc discover TARGET [--json] [--watch]``: show what a target resolves to.

Output: a table (host, port, zone, health, instance id, source), or with
``--json`` a JSON array of endpoint objects (``host``, ``port``, ``attributes``,
``source``). ``--watch`` prints the first snapshot and then each change until
interrupted (Ctrl-C exits 0); with ``--json`` each snapshot is one line.
Exit codes: 0 done, 1 the target could not be resolved, 2 a bad target.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ecsgrpc.endpoints import EndpointSet
from ecsgrpc.errors import ResolutionError
from ecsgrpc.resolvers.registry import build_resolver
from ecsgrpc.targets import parse_target

__all__ = ["discover_command", "register"]


def discover_command(
    target: Annotated[str, typer.Argument(help="A target, e.g. dns:///agent.local:50051.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Print each change until Ctrl-C.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds for each lookup or API call.")] = 5.0,
) -> int:
    """Resolve TARGET and print its endpoints (once, or every change with --watch)."""
    parse_target(target)  # a bad target is a ConfigError: one line, exit 2
    logging.basicConfig(level=logging.WARNING, format="ecsgrpc discover: %(message)s")
    printer = _Printer(as_json=as_json, watch=watch)
    try:
        asyncio.run(_discover(target, printer, watch=watch, io_timeout=timeout))
    except KeyboardInterrupt:
        return 0
    except ResolutionError as exc:
        typer.echo(f"ecsgrpc discover: cannot resolve {target!r}: {exc}", err=True)
        return 1
    return 0


async def _discover(target: str, printer: _Printer, *, watch: bool, io_timeout: float) -> None:
    async with build_resolver(target, timeout=io_timeout) as resolver:
        if not watch:
            printer.show(await resolver.resolve())
            return
        async for snapshot in resolver.watch():
            printer.show(snapshot)


class _Printer:
    def __init__(self, *, as_json: bool, watch: bool) -> None:
        self._as_json = as_json
        self._watch = watch
        self._previous: EndpointSet | None = None
        # Off a terminal rich assumes 80 columns and would truncate instance ids.
        self._console = Console(width=None if sys.stdout.isatty() else 200)

    def show(self, snapshot: EndpointSet) -> None:
        if self._as_json:
            rows = [{**ep.to_dict(), "source": snapshot.source} for ep in snapshot]
            indent = None if self._watch else 2
            sys.stdout.write(json.dumps(rows, indent=indent) + "\n")
            sys.stdout.flush()
        else:
            self._console.print(self._table(snapshot))
        self._previous = snapshot

    def _table(self, snapshot: EndpointSet) -> Table:
        table = Table(title=self._title(snapshot), title_justify="left")
        for column in ("host", "port", "zone", "health", "instance id", "source"):
            table.add_column(column, justify="right" if column == "port" else "left")
        for ep in snapshot:
            health = ep.attributes.get("health", "")
            table.add_row(
                ep.host, str(ep.port), ep.zone or "", health, ep.instance_id or "", snapshot.source
            )
        return table

    def _title(self, snapshot: EndpointSet) -> str:
        stamp = time.strftime("%H:%M:%S")
        count = f"{len(snapshot)} endpoint{'s' if len(snapshot) != 1 else ''}"
        if self._previous is None:
            return f"{stamp} {count} from {snapshot.source}"
        added, removed, changed = self._previous.diff(snapshot)
        return (
            f"{stamp} {count} from {snapshot.source}"
            f" (+{len(added)} -{len(removed)} ~{len(changed)})"
        )


def register(app: typer.Typer) -> None:
    app.command("discover")(discover_command)
