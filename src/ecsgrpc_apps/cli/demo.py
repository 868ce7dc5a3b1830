"""``ecsgrpc demo``: run the whole system locally and prove it loses no request."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from rich.console import Console
from rich.live import Live

from ecsgrpc.cli.base import CommandParser, add_version
from ecsgrpc_apps.demo.run import DemoOptions, DemoState, run_demo
from ecsgrpc_apps.demo.view import render, render_summary


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.05 <= value <= 10:
        raise argparse.ArgumentTypeError(f"{text!r} is not in 0.05-10")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535; 0: any free one)")
    return int(text)


def add_parser(commands: Any) -> CommandParser:
    parser: CommandParser = commands.add_parser(
        "demo",
        help="Run the whole system locally and show it loses no request.",
        description="Embedded Cloud Map + 3 agent tasks + the gateway; load, rolling deploy, "
        "SIGKILL, summary. Exits 0 only when no request failed.",
    )
    add_version(parser)
    parser.add_argument(
        "--json", dest="json_output", action="store_true", help="Print the summary as JSON."
    )
    parser.add_argument(
        "--keep-running", action="store_true", help="Leave the stack up (Ctrl-C stops it)."
    )
    parser.add_argument(
        "--port", type=_port, default=8080, help="Gateway port (default 8080; a free one if taken)."
    )
    parser.add_argument(
        "--speed", type=_speed, default=1.0, help="Scale every phase (1 = about a minute)."
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    return demo(
        json_output=args.json_output,
        keep_running=args.keep_running,
        port=args.port,
        speed=args.speed,
    )


def demo(*, json_output: bool, keep_running: bool, port: int, speed: float) -> int:
    """Run the demo; 0 only when no request failed."""
    logging.basicConfig(level=logging.WARNING)
    options = DemoOptions(
        port=port,
        keep_running=keep_running,
        warmup_seconds=7.0 * speed,
        settle_seconds=5.0 * speed,
        after_kill_seconds=7.0 * speed,
    )
    console = Console(stderr=json_output)
    live = Live(console=console, refresh_per_second=4, transient=False)

    def update(state: DemoState) -> None:
        if state.phase.startswith("keep-running"):
            live.stop()
            _print_urls(console, state.url)
        else:
            live.update(render(state))

    with live:
        summary = asyncio.run(run_demo(options, on_update=update))
    if json_output:
        sys.stdout.write(json.dumps(summary.to_json()) + "\n")
    else:
        console.print(render_summary(summary))
    return 0 if summary.ok else 1


def _print_urls(console: Console, url: str) -> None:
    console.print(f"\nThe stack is up. Chat page: [cyan]{url}/[/cyan]")
    console.print(f"Endpoints: {url}/debug/endpoints   Metrics: {url}/metrics")
    # One line, never wrapped (a wrapped command breaks when pasted), no markup.
    console.print(
        f"curl -N -H 'accept: text/event-stream' -H 'content-type: application/json' "
        f'-d \'{{"messages":[{{"role":"user","content":"hello ecs"}}]}}\' '
        f"{url}/v1/conversations",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    console.print("Press Ctrl-C to stop.")
