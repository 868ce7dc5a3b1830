"""``ecsgrpc demo``: run the whole system locally and prove it loses no request."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live

from ecsgrpc_apps.demo.run import DemoOptions, DemoState, run_demo
from ecsgrpc_apps.demo.view import render, render_summary


def demo(
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object.")
    ] = False,
    keep_running: Annotated[
        bool, typer.Option(help="Leave the stack up afterwards (Ctrl-C stops it).")
    ] = False,
    port: Annotated[int, typer.Option(help="Gateway port (a free one if taken).")] = 8080,
    speed: Annotated[
        float,
        typer.Option(help="Scale every phase's length (1 = about a minute).", min=0.05, max=10),
    ] = 1.0,
) -> int:
    """Embedded Cloud Map + 3 agent tasks + the gateway; load, rolling deploy, SIGKILL, summary.

    Exits 0 only when no request failed.
    """
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
        typer.echo(json.dumps(summary.to_json()))
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


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
