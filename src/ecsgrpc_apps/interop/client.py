"""Run gRPC's interop cases against any target, over a plain or a balanced channel.

    python -m ecsgrpc_apps.interop.client --target static:///h1:p1,h2:p2 \\
        --channel ecsgrpc --policy round_robin --test_case all

``--channel grpc`` uses ``grpc.aio.insecure_channel(TARGET)`` (the control);
``--channel ecsgrpc`` uses ``ecsgrpc.connect(TARGET, policy=POLICY)``. The
interop clients' own ``--server_host``/``--server_port`` work too. One line per
case (PASS/FAIL, seconds, the failed condition); exit status 0 when every case
passed, 1 when one failed, 2 for bad arguments. Plaintext only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from ecsgrpc_apps.interop.cases import CASES, CaseFailed, CaseOptions, run_case

__all__ = ["main", "run_cases"]

CHANNEL_KINDS = ("grpc", "ecsgrpc")


def channel_factory(target: str, kind: str, policy: str) -> Callable[[], Any]:
    """A function that opens a new channel of ``kind`` to ``target``.

    For ``ecsgrpc``, call it once before relying on it: a bad target or policy
    raises ``ecsgrpc.ConfigError`` (a ValueError) naming the value.
    """
    if kind == "grpc":
        return lambda: grpc.aio.insecure_channel(target)
    import ecsgrpc

    return lambda: ecsgrpc.connect(target, policy=policy)


async def run_cases(
    names: Sequence[str],
    new_channel: Callable[[], Any],
    options: CaseOptions,
    *,
    timeout: float,
    out: Callable[[str], None] = print,
) -> int:
    """Run ``names`` in order, one fresh channel per case; the number that failed."""
    failed = 0
    for name in names:
        channel = new_channel()
        started = time.monotonic()
        try:
            await run_case(name, channel, options, timeout=timeout)
        except (CaseFailed, grpc.aio.AioRpcError, AttributeError, TypeError) as error:
            # AttributeError/TypeError: the channel lacks part of the grpc.aio call API.
            failed += 1
            text = str(error).replace("\n", " ")
            out(f"FAIL {name} ({time.monotonic() - started:.2f}s): {type(error).__name__}: {text}")
        else:
            out(f"PASS {name} ({time.monotonic() - started:.2f}s)")
        finally:
            await channel.close()
    out(f"{len(names) - failed} passed, {failed} failed")
    return failed


def _names(text: str) -> list[str]:
    if text == "all":
        return list(CASES)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown or not names:
        raise ValueError(
            f"--test_case {text!r}: unknown case {', '.join(unknown) or '(none)'}; "
            f"choose 'all' or from {', '.join(CASES)}"
        )
    return names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ecsgrpc_apps.interop.client",
        description="Run gRPC's interop test cases against a target (plaintext).",
    )
    parser.add_argument(
        "--target",
        help="with --channel ecsgrpc: any ecsgrpc target (static:///a,b, dns:///..., ...); "
        "with --channel grpc: a grpc target (host:port, ipv4:..., dns:...)",
    )
    parser.add_argument("--server_host", help="interop style: host (with --server_port)")
    parser.add_argument("--server_port", type=int, help="interop style: port")
    parser.add_argument(
        "--test_case", "--case", default="all", help="a case, a comma list, or 'all' (default)"
    )
    parser.add_argument(
        "--channel", choices=CHANNEL_KINDS, default="ecsgrpc", help="channel kind (default ecsgrpc)"
    )
    parser.add_argument(
        "--policy", default="least_request", help="ecsgrpc balancing policy (default least_request)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="bound per case, seconds")
    parser.add_argument(
        "--soak_iterations", type=int, default=10, help="calls per soak case (default 10)"
    )
    parser.add_argument(
        "--soak_max_failures", type=int, default=0, help="failed iterations allowed (default 0)"
    )
    parser.add_argument(
        "--soak_per_iteration_max_acceptable_latency_ms",
        type=int,
        default=1000,
        help="an iteration slower than this fails (default 1000)",
    )
    parser.add_argument(
        "--soak_overall_timeout_seconds",
        type=float,
        default=60.0,
        help="every iteration must finish within this (default 60)",
    )
    parser.add_argument(
        "--soak_min_time_ms_between_rpcs",
        type=int,
        default=0,
        help="minimum time from one iteration's start to the next (default 0)",
    )
    parser.add_argument("--list", action="store_true", help="print the case names and exit")
    return parser


def _target(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    if args.target and (args.server_host or args.server_port is not None):
        parser.error("give --target or --server_host/--server_port, not both")
    if args.target:
        return str(args.target)
    if not args.server_host or args.server_port is None:
        parser.error("give --target, or --server_host and --server_port")
    if not 0 < args.server_port <= 65535:
        parser.error(f"--server_port must be 1..65535, got {args.server_port}")
    host = str(args.server_host)
    return f"[{host}]:{args.server_port}" if ":" in host else f"{host}:{args.server_port}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m ecsgrpc_apps.interop.client``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(CASES))
        return 0
    target = _target(parser, args)
    try:
        names = _names(args.test_case)
    except ValueError as exc:
        parser.error(str(exc))
    if args.timeout <= 0:
        parser.error(f"--timeout must be > 0, got {args.timeout}")
    if args.soak_iterations < 1:
        parser.error(f"--soak_iterations must be >= 1, got {args.soak_iterations}")
    new_channel = channel_factory(target, args.channel, args.policy)
    options = CaseOptions(
        soak_iterations=args.soak_iterations,
        soak_max_failures=args.soak_max_failures,
        soak_per_iteration_max_acceptable_latency_ms=args.soak_per_iteration_max_acceptable_latency_ms,
        soak_overall_timeout_seconds=args.soak_overall_timeout_seconds,
        soak_min_time_ms_between_rpcs=args.soak_min_time_ms_between_rpcs,
        new_channel=new_channel,
    )

    async def run() -> int:
        try:
            await new_channel().close()  # a bad target or policy fails here, named
        except ValueError as exc:  # ecsgrpc.ConfigError is a ValueError
            print(f"error: --target {target!r} --policy {args.policy!r}: {exc}", file=sys.stderr)
            return 2
        failed = await run_cases(names, new_channel, options, timeout=args.timeout)
        return 1 if failed else 0

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
