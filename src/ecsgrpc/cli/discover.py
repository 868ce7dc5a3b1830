"""``ecsgrpc discover TARGET [--json] [--watch]``: show what a target resolves to.

Output: a table (host, port, zone, health, instance id, source), or with
``--json`` a JSON array of endpoint objects (``host``, ``port``, ``attributes``,
``source``). ``--watch`` prints the first snapshot and then each change until
interrupted (Ctrl-C exits 0); with ``--json`` each snapshot is one line.
Exit codes: 0 done, 1 the target could not be resolved, 2 a bad target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any

from ecsgrpc.cli.base import CommandParser, add_version, fail
from ecsgrpc.endpoints import EndpointSet
from ecsgrpc.errors import ResolutionError
from ecsgrpc.resolvers.registry import build_resolver
from ecsgrpc.targets import parse_target

__all__ = ["add_parser", "run"]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not in 0-3600 seconds")
    return value


def add_parser(commands: Any) -> CommandParser:
    parser: CommandParser = commands.add_parser(
        "discover",
        help="Resolve a target and print its endpoints.",
        description="Resolve TARGET and print its endpoints (once, or every change with --watch).",
        epilog="Exit codes: 0 done, 1 the target could not be resolved, 2 a bad target.",
    )
    add_version(parser)
    parser.add_argument("target", help="A target, e.g. dns:///agent.local:50051.")
    parser.add_argument("--json", dest="as_json", action="store_true", help="Print JSON.")
    parser.add_argument("--watch", action="store_true", help="Print each change until Ctrl-C.")
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="Time for each lookup or API call (default 5).",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Resolve and print; a bad target is a ConfigError (one line, exit 2)."""
    target: str = args.target
    parse_target(target)
    logging.basicConfig(level=logging.WARNING, format="ecsgrpc discover: %(message)s")
    printer = _Printer(as_json=args.as_json, watch=args.watch)
    try:
        asyncio.run(_discover(target, printer, watch=args.watch, io_timeout=args.timeout))
    except KeyboardInterrupt:
        return 0
    except ResolutionError as exc:
        fail("ecsgrpc discover", f"cannot resolve {target!r}: {exc}")
        return 1
    return 0


async def _discover(target: str, printer: _Printer, *, watch: bool, io_timeout: float) -> None:
    async with build_resolver(target, timeout=io_timeout) as resolver:
        if not watch:
            printer.show(await resolver.resolve())
            return
        async for snapshot in resolver.watch():
            printer.show(snapshot)


_COLUMNS = ("host", "port", "zone", "health", "instance id", "source")


class _Printer:
    def __init__(self, *, as_json: bool, watch: bool) -> None:
        self._as_json = as_json
        self._watch = watch
        self._previous: EndpointSet | None = None

    def show(self, snapshot: EndpointSet) -> None:
        if self._as_json:
            rows = [{**ep.to_dict(), "source": snapshot.source} for ep in snapshot]
            indent = None if self._watch else 2
            sys.stdout.write(json.dumps(rows, indent=indent) + "\n")
        else:
            sys.stdout.write(self._table(snapshot))
        sys.stdout.flush()
        self._previous = snapshot

    def _table(self, snapshot: EndpointSet) -> str:
        """A plain aligned table (full values: instance ids are never cut)."""
        rows = [
            (
                ep.host,
                str(ep.port),
                ep.zone or "",
                ep.attributes.get("health", ""),
                ep.instance_id or "",
                snapshot.source,
            )
            for ep in snapshot
        ]
        widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(_COLUMNS)]
        lines = [self._title(snapshot)]
        for row in (_COLUMNS, *rows):
            cells = [
                cell.rjust(w) if i == 1 else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines) + "\n"

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
