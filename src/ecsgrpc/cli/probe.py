"""``ecsgrpc probe``: a drop-in for grpc_health_probe (ECS container health checks).

grpc_health_probe's flags are accepted as it spells them (one dash, Go style:
``-addr=host:port``, ``-connect-timeout 250ms``, ``-tls``, ``-tls=false``) and
with two dashes; ``ecsgrpc probe HOST:PORT --timeout S`` is the short form.
Exit codes are grpc_health_probe's: 0 SERVING, 1 invalid arguments,
2 connection failure or timeout, 3 RPC failure, 4 not SERVING, 20 SPIFFE
credentials unavailable. See docs/security.md for the flag table.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from ecsgrpc.cli.base import CommandParser, UsageError, add_version, fail

__all__ = ["add_parser", "normalise_go_flags", "parse_duration", "run"]

# grpc_health_probe's boolean flags: Go accepts -flag, -flag=true and -flag=false.
_BOOL_FLAGS = ("tls", "tls-no-verify", "gzip", "v", "spiffe")
_TRUE = ("1", "t", "true", "TRUE", "True")
_FALSE = ("0", "f", "false", "FALSE", "False")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def normalise_go_flags(args: list[str]) -> list[str]:
    """Go's ``-flag=true|false`` for boolean flags, as argparse cannot take them."""
    out = []
    for arg in args:
        name, eq, value = arg.lstrip("-").partition("=")
        if arg.startswith("-") and eq and name in _BOOL_FLAGS:
            if value in _TRUE:
                out.append(f"--{name}")
                continue
            if value in _FALSE:
                continue
            raise UsageError("ecsgrpc probe", f"-{name}={value!r}: not a boolean (true/false)")
        out.append(arg)
    return out


def parse_duration(text: str) -> float:
    """Seconds from a Go duration (``250ms``, ``1.5s``, ``1m30s``) or a plain number."""
    try:
        return float(text)
    except ValueError:
        pass
    if not _DURATION.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 250ms, 1s, 1.5s)")
    return sum(float(n) * _UNIT[u] for n, u in _PART.findall(text))


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not 'name: value'")
    return name.strip().lower(), value.lstrip()


def _flag(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> None:
    """grpc_health_probe's one-dash spelling and the two-dash one."""
    parser.add_argument(f"-{name}", f"--{name}", **kwargs)


def add_parser(commands: Any) -> CommandParser:
    parser: CommandParser = commands.add_parser(
        "probe",
        help="Check a server's grpc.health.v1 status (a grpc_health_probe drop-in).",
        description="Check a server's grpc.health.v1 status; a drop-in for grpc_health_probe "
        "(its one-dash flags, Go durations and exit codes), usable as an ECS healthCheck.",
        epilog="Exit codes: 0 serving, 1 invalid arguments, 2 connection failure, "
        "3 RPC failure, 4 not serving, 20 SPIFFE credentials unavailable.",
    )
    add_version(parser)
    parser.add_argument("address", nargs="?", metavar="HOST:PORT", help="Server to check.")
    _flag(parser, "addr", metavar="HOST:PORT", help="Server to check (as grpc_health_probe).")
    _flag(
        parser, "service", default="", help="Service name to check (default '': the whole server)."
    )
    parser.add_argument(
        "--timeout",
        type=parse_duration,
        default=None,
        metavar="SECONDS",
        help="Sets both -connect-timeout and -rpc-timeout (default 1s each).",
    )
    _flag(
        parser,
        "connect-timeout",
        type=parse_duration,
        metavar="DURATION",
        default=None,
        help="Time to connect, e.g. 250ms, 1s (default 1s).",
    )
    _flag(
        parser,
        "rpc-timeout",
        type=parse_duration,
        metavar="DURATION",
        default=None,
        help="Time for the health RPC (default 1s).",
    )
    _flag(parser, "tls", action="store_true", help="Connect with TLS.")
    _flag(parser, "tls-ca-cert", type=Path, metavar="FILE", help="CA bundle to trust (PEM).")
    _flag(parser, "tls-client-cert", type=Path, metavar="FILE", help="Client cert (mTLS, PEM).")
    _flag(parser, "tls-client-key", type=Path, metavar="FILE", help="Client key (mTLS, PEM).")
    _flag(parser, "tls-server-name", metavar="NAME", help="Name to verify in the server cert.")
    _flag(
        parser,
        "tls-no-verify",
        action="store_true",
        help="Trust the certificate chain the server presents (INSECURE).",
    )
    _flag(
        parser,
        "rpc-header",
        type=_header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="Metadata sent with the health RPC; repeatable.",
    )
    _flag(
        parser,
        "user-agent",
        default="grpc_health_probe",
        help="User-agent of the RPC (default grpc_health_probe).",
    )
    _flag(parser, "gzip", action="store_true", help="Compress the RPC with gzip.")
    _flag(
        parser,
        "spiffe",
        action="store_true",
        help="SPIFFE Workload API credentials (not available here: exit 20).",
    )
    parser.add_argument("-v", "--verbose", dest="v", action="store_true", help="Verbose output.")
    parser.set_defaults(run=run)
    return parser


def _name(args: argparse.Namespace, flag: str) -> str:
    """``flag`` as the user spelled it (``--flag`` or ``-flag``); a flag not typed
    takes the style of the ones that were (grpc_health_probe's one dash by default)."""
    typed: tuple[str, ...] = getattr(args, "argv", ())
    double, single = f"--{flag}", f"-{flag}"
    if any(a == double or a.startswith(double + "=") for a in typed):
        return double
    if any(a == single or a.startswith(single + "=") for a in typed):
        return single
    if any(a.startswith("--") and a != "--timeout" for a in typed):
        return double
    return single


def _check(args: argparse.Namespace) -> str:
    """The target; UsageError (exit 1) for grpc_health_probe's invalid combinations."""
    if args.address and args.addr and args.address != args.addr:
        raise UsageError("ecsgrpc probe", "give the address once (HOST:PORT or -addr)")
    target = args.addr or args.address
    if not target:
        raise UsageError("ecsgrpc probe", "-addr not specified")
    for flag in ("timeout", "connect_timeout", "rpc_timeout"):
        value = getattr(args, flag)
        if value is not None and not value > 0:
            name = "--timeout" if flag == "timeout" else _name(args, flag.replace("_", "-"))
            raise UsageError("ecsgrpc probe", f"{name} must be > 0 (got {value:g})")
    _check_tls(args)
    return str(target)


def _check_tls(args: argparse.Namespace) -> None:
    def n(flag: str) -> str:
        return _name(args, flag)

    tls_only = ("tls-no-verify", "tls-ca-cert", "tls-client-cert", "tls-client-key")
    for flag in (*tls_only, "tls-server-name"):
        if getattr(args, flag.replace("-", "_")) and not args.tls:
            raise UsageError("ecsgrpc probe", f"{n(flag)} given without {n('tls')}")
    if bool(args.tls_client_cert) != bool(args.tls_client_key):
        given, missing = ("tls-client-cert", "tls-client-key")
        if not args.tls_client_cert:
            given, missing = missing, given
        raise UsageError("ecsgrpc probe", f"{n(given)} given without {n(missing)}")
    if args.tls_no_verify and (args.tls_ca_cert or args.tls_server_name):
        other = "tls-ca-cert" if args.tls_ca_cert else "tls-server-name"
        raise UsageError("ecsgrpc probe", f"cannot give {n(other)} with {n('tls-no-verify')}")
    if args.tls and args.spiffe:
        raise UsageError("ecsgrpc probe", f"{n('tls')} and {n('spiffe')} cannot be combined")


def run(args: argparse.Namespace) -> int:
    """Run the check; the result line goes to stdout (SERVING) or stderr."""
    target = _check(args)
    out = _silence_native_stderr()
    if args.spiffe:
        fail("ecsgrpc probe", "no SPIFFE Workload API client here; use -tls with files", stream=out)
        return 20
    from ecsgrpc.security.client_tls import ClientTls
    from ecsgrpc.server.probe import ProbeOptions, ProbeStatus, probe

    default = 1.0 if args.timeout is None else args.timeout
    tls = (
        ClientTls(
            ca=args.tls_ca_cert,
            cert=args.tls_client_cert,
            key=args.tls_client_key,
            server_name=args.tls_server_name,
            names=(
                _name(args, "tls-ca-cert"),
                _name(args, "tls-client-cert"),
                _name(args, "tls-client-key"),
                _name(args, "tls-server-name"),
            ),
        )
        if args.tls
        else None
    )
    options = ProbeOptions(
        service=args.service,
        connect_timeout=args.connect_timeout or default,
        rpc_timeout=args.rpc_timeout or default,
        tls=tls,
        tls_no_verify=args.tls_no_verify,
        metadata=tuple(args.rpc_header),
        gzip=args.gzip,
        user_agent=args.user_agent,
        verbose=(lambda line: _say(out, line)) if args.v else None,
    )
    try:
        result = probe(target, options=options)
    except Exception as exc:  # one line, never a traceback (stderr is silenced)
        fail("ecsgrpc probe", f"unexpected {type(exc).__name__}: {exc}", stream=out)
        return int(ProbeStatus.CONNECTION_FAILURE)
    if result.status is ProbeStatus.SERVING:
        sys.stdout.write(result.message + "\n")
    else:
        fail("ecsgrpc probe", result.message, stream=out)
    return int(result.status)


def _say(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")
    stream.flush()


def _silence_native_stderr() -> TextIO:
    """grpc core writes its own log lines to file descriptor 2, and grpc's
    connectivity thread may print a traceback when the channel closes under it;
    a health check's output must be the probe's one line. Point fd 2 (and
    ``sys.stderr``) at /dev/null for the rest of this short-lived process and
    return a stream on the real stderr for our own lines."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    sys.stderr.flush()
    real = os.fdopen(os.dup(2), "w", encoding="utf-8", errors="replace")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (lives until exit)
    return real
