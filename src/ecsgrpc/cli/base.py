"""What every ``ecsgrpc`` command shares (standard library ``argparse``).

Conventions, the same in every command (library or application):

* ``-h``/``--help`` and ``--version`` everywhere;
* boolean flags take no value (``--tls``, ``--json``);
* an error is one line on stderr, ``ecsgrpc COMMAND: error: ...``, naming the
  flag the user typed (and its value), never a traceback; usage errors exit 2
  (``probe``: 1, as grpc_health_probe does).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

__all__ = [
    "CommandParser",
    "UsageError",
    "add_version",
    "fail",
    "version_text",
]


class UsageError(Exception):
    """A command line that cannot be run: ``prog`` and a one-line message."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog
        self.message = message


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are :class:`UsageError` (one line, no usage dump)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, message)


def version_text() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("ecsgrpc")
    except PackageNotFoundError:  # pragma: no cover (running from a source tree)
        ours = "unknown"
    try:
        grpcio = version("grpcio")
    except PackageNotFoundError:  # pragma: no cover
        grpcio = "unknown"
    python = ".".join(str(p) for p in sys.version_info[:3])
    return f"ecsgrpc {ours} (grpcio {grpcio}, Python {python})"


class _VersionAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        sys.stdout.write(version_text() + "\n")
        parser.exit(0)


def add_version(parser: argparse.ArgumentParser) -> None:
    """``--version``: ecsgrpc's, grpcio's and Python's versions; exit 0."""
    parser.add_argument("--version", action=_VersionAction, help="Show versions and exit.")


def fail(prog: str, message: str, *, stream: TextIO | None = None) -> None:
    """Print the one-line error format of every command."""
    out = sys.stderr if stream is None else stream
    out.write(f"{prog}: error: {message}\n")
    out.flush()


# A command module (library or application) exposes this:
#   add_parser(subparsers) -> CommandParser   with set_defaults(run=callable)
# and run(args: argparse.Namespace) -> int.
Register = Callable[[Any], argparse.ArgumentParser]
