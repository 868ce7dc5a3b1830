"""The ``ecsgrpc`` command line (standard library ``argparse``; see ``base.py``).

The library's own commands (``probe``, ``discover``) live here; applications
(the Workflow Agent, the gateway, the demo, the benchmarks) add theirs through
the entry-point group ``ecsgrpc.commands``: the library never imports them.
Only the command being run is imported, so ``ecsgrpc probe`` (an ECS health
check, run every 30 s) loads nothing it does not use.

Exit codes: the command's own; usage and configuration errors exit 2 (for
``probe``, 1 as grpc_health_probe does); an address that cannot be bound
exits 1; always as one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import cast

from ecsgrpc.cli.base import CommandParser, UsageError, add_version, fail
from ecsgrpc.errors import BindError, EcsGrpcError

__all__ = ["COMMAND_GROUP", "LIBRARY_COMMANDS", "main"]

LIBRARY_COMMANDS = ("probe", "discover", "xds")
COMMAND_GROUP = "ecsgrpc.commands"
# Commands whose usage errors exit 1 (grpc_health_probe's "invalid arguments").
_EXIT_1_ON_USAGE = frozenset({"probe"})


def _app_commands() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=COMMAND_GROUP)}


def _modules(args: list[str]) -> dict[str, Callable[[], ModuleType]]:
    """Loaders of the command modules needed for ``args`` (only the one run)."""
    if args and args[0] in LIBRARY_COMMANDS:
        name = args[0]
        return {name: lambda: importlib.import_module(f"ecsgrpc.cli.{name}")}
    apps = _app_commands()
    if args and args[0] in apps:
        return {args[0]: lambda: importlib.import_module(apps[args[0]])}
    found: dict[str, Callable[[], ModuleType]] = {}
    for name in LIBRARY_COMMANDS:
        found[name] = lambda name=name: importlib.import_module(f"ecsgrpc.cli.{name}")  # type: ignore[misc]
    for name, module in apps.items():
        found[name] = lambda module=module: importlib.import_module(module)  # type: ignore[misc]
    return found


def _parser(args: list[str]) -> CommandParser:
    parser = CommandParser(
        prog="ecsgrpc",
        description="gRPC service discovery, load balancing and draining for AWS ECS.",
    )
    add_version(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for name, load in _modules(args).items():
        try:
            module = load()
        except ImportError as exc:
            if args and args[0] == name:
                raise UsageError(f"ecsgrpc {name}", _missing_extra(name, exc)) from None
            continue
        module.add_parser(commands)
    return parser


def _missing_extra(name: str, exc: ImportError) -> str:
    extra = {"agent": "agent", "gateway": "gateway", "demo": "local", "bench": "bench"}.get(name)
    hint = f": pip install 'ecsgrpc[{extra}]'" if extra else ""
    return f"this command needs {exc.name or 'a package'} (not installed){hint}"


def _parse(parser: CommandParser, args: list[str], command: str | None) -> argparse.Namespace:
    """Parse, naming the command (not the root) for arguments nobody knows."""
    namespace, extra = parser.parse_known_args(args)
    if extra:
        prog = f"ecsgrpc {command}" if command else "ecsgrpc"
        raise UsageError(prog, f"unrecognized arguments: {' '.join(extra)}")
    return namespace


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns (and exits with) the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    code = _run(args)
    if argv is None:
        if args[:1] == ["probe"]:
            # A health check ECS runs every 30 s in every task: skip the
            # interpreter's teardown of grpc's core (about 0.2 s of wall time
            # for nothing; the probe's channel is closed and its line written).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        sys.exit(code)
    return code


def _run(args: list[str]) -> int:
    command = args[0] if args and not args[0].startswith("-") else None
    try:
        parser = _parser(args)
        if command is not None and command == "probe":
            from ecsgrpc.cli.probe import normalise_go_flags

            args = ["probe", *normalise_go_flags(args[1:])]
        namespace = _parse(parser, args, command)
        namespace.argv = tuple(args)  # how the user spelled each flag (errors name it so)
        run = cast(Callable[[argparse.Namespace], int] | None, getattr(namespace, "run", None))
        if run is None:
            parser.print_help()
            return 2
        return run(namespace)
    except BindError as exc:
        fail(f"ecsgrpc {command}" if command else "ecsgrpc", str(exc))
        return 1
    except UsageError as exc:
        fail(exc.prog, f"{exc.message} (see --help)")
        return 1 if command in _EXIT_1_ON_USAGE else 2
    except EcsGrpcError as exc:
        fail(f"ecsgrpc {command}" if command else "ecsgrpc", str(exc))
        return 1 if command in _EXIT_1_ON_USAGE else 2
    except KeyboardInterrupt:
        fail(f"ecsgrpc {command}" if command else "ecsgrpc", "interrupted")
        return 130
