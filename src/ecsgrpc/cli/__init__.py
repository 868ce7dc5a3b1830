"""The ``ecsgrpc`` command line. Each command lives in its own module here.

Errors are one line on stderr: usage errors exit 2 (``probe``: 1, as
grpc_health_probe does), configuration errors exit 2, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer
import typer.main

from ecsgrpc.errors import EcsGrpcError

__all__ = ["app", "main"]

# typer >= 0.29 vendors click; take the exception classes from wherever the
# installed typer defines them.
_click_exc = importlib.import_module(typer.BadParameter.__module__)

app = typer.Typer(
    name="ecsgrpc",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """gRPC service discovery, load balancing and draining for AWS ECS."""
    # A callback keeps typer in group mode even when one command is registered.


# The library's own commands: one module each here, with register(app).
LIBRARY_COMMANDS = ("probe", "discover")
# Applications built on the library (the Workflow Agent, the gateway, the demo,
# the benchmarks) add their commands through this entry-point group: the
# library never imports them. Each entry point names a module with register(app).
COMMAND_GROUP = "ecsgrpc.commands"


def _app_commands() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=COMMAND_GROUP)}


def _register(args: list[str]) -> None:
    """Import only the command being run, so `ecsgrpc probe` (an ECS health check,
    run every 30 s) does not pay for FastAPI, matplotlib or moto."""
    if args and args[0] in LIBRARY_COMMANDS:
        importlib.import_module(f"ecsgrpc.cli.{args[0]}").register(app)
        return
    apps = _app_commands()
    if args and args[0] in apps:
        importlib.import_module(apps[args[0]]).register(app)
        return
    for name in LIBRARY_COMMANDS:
        importlib.import_module(f"ecsgrpc.cli.{name}").register(app)
    # Listing every command (--help, an unknown command): an app command whose
    # extra is not installed (a container image with only `agent,gateway`) is
    # left out instead of failing every other command with an ImportError.
    for module in apps.values():
        try:
            importlib.import_module(module).register(app)
        except ImportError:
            continue


# Commands whose usage errors must exit 1 rather than click's 2.
_EXIT_1_ON_USAGE = {"probe"}


def _given_value(exc: Exception, args: list[str]) -> str:
    """`` (got 'soon')`` for a bad option value, so the message names the value."""
    param = getattr(exc, "param", None)
    for opt in getattr(param, "opts", ()):
        for i, arg in enumerate(args):
            if arg == opt and i + 1 < len(args):
                return f" (got {args[i + 1]!r})"
            if arg.startswith(opt + "="):
                return f" (got {arg[len(opt) + 1 :]!r})"
    return ""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns (and exits with) the exit code."""
    args = sys.argv[1:] if argv is None else argv
    _register(args)
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="ecsgrpc", standalone_mode=False)
    except _click_exc.UsageError as exc:
        name = exc.ctx.command.name if exc.ctx is not None else None
        where = f"ecsgrpc {name}" if name and name != "ecsgrpc" else "ecsgrpc"
        message = exc.format_message() + _given_value(exc, args)
        if message:  # empty when help was shown for a bare `ecsgrpc`
            typer.echo(f"{where}: error: {message} (see --help)", err=True)
        code = 1 if name in _EXIT_1_ON_USAGE else 2
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        code = 130
    except _click_exc.ClickException as exc:
        typer.echo(f"ecsgrpc: error: {exc.format_message()}", err=True)
        code = exc.exit_code
    except EcsGrpcError as exc:
        typer.echo(f"ecsgrpc: error: {exc}", err=True)
        code = 2
    else:
        code = result if isinstance(result, int) else 0
    if argv is None:
        sys.exit(code)
    return code
