"""``ecsgrpc bench``: the benchmark and fault suite against the baselines."""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ecsgrpc.errors import ConfigError

_SCALE_HELP = "Multiply every duration (for tests)."


def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="Short durations (under 3 minutes).")
    ] = False,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write every number to this JSON file.")
    ] = None,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="Write PNG plots into this directory.")
    ] = None,
    only: Annotated[
        str | None,
        typer.Option(help="Comma-separated scenarios to run (default: all of them)."),
    ] = None,
    servers: Annotated[
        int | None,
        typer.Option(
            "--servers",
            help="Agent processes of the client_bound scenario, each pinned to a core of its "
            "own when there are enough (default: half the cores, 2 to 8).",
        ),
    ] = None,
    seconds_scale: Annotated[float, typer.Option(hidden=True, help=_SCALE_HELP)] = 1.0,
) -> int:
    """Run ecsgrpc against gRPC's native balancing and the seed's client, side by side.

    grpc's core logs each GOAWAY (kills, deploys) on stderr; run with
    GRPC_VERBOSITY=ERROR in the environment to hide those lines.

    Scenarios: overhead, client_bound, task_killed, rolling_deploy, scale_out,
    slow_task, discovery_outage, client_scale, silent_failure (its black holes
    need iptables and root). Prints markdown tables and the targets.
    """
    from ecsgrpc_apps.bench.report import document, machine, markdown
    from ecsgrpc_apps.bench.runner import SCENARIOS, parse_only, run_bench
    from ecsgrpc_apps.bench.settings import BenchSettings

    if not 0 < seconds_scale <= 10:
        raise ConfigError(f"--seconds-scale must be in (0, 10], got {seconds_scale!r}")
    if servers is not None and not 1 <= servers <= 64:
        raise ConfigError(f"--servers must be from 1 to 64, got {servers!r}")
    scenarios = parse_only(only)
    settings = BenchSettings.make(quick=quick, scale=seconds_scale, servers=servers)
    if plots is not None:
        from ecsgrpc_apps.bench.plots import _plt

        try:
            _plt()
        except RuntimeError as exc:
            raise ConfigError(str(exc)) from None
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    console = Console(stderr=True)
    started = time.monotonic()
    env = machine()
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[scenario]}[/] {task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("starting", total=len(scenarios), scenario="")

        def on_scenario(name: str, index: int) -> None:
            bar.update(task, completed=index, scenario=f"[{index + 1}/{len(scenarios)}] {name}")

        results = asyncio.run(
            run_bench(
                settings,
                only=scenarios,
                progress=lambda text: bar.update(task, description=text),
                on_scenario=on_scenario,
            )
        )
        bar.update(task, completed=len(scenarios), description="done")
    elapsed = time.monotonic() - started
    command = "ecsgrpc bench " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else [])
    doc = document(
        results,
        command=command.strip(),
        settings={**settings.__dict__, "scale_sizes": list(settings.scale_sizes)},
        env=env,
        seconds=elapsed,
    )
    doc["scenario_names"] = [name for name in SCENARIOS if name in scenarios]
    typer.echo(markdown(results))
    typer.echo(f"Ran in {elapsed:.0f}s on {env['cpus']} CPUs ({env['cpu_model']}).")
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(doc, indent=2) + "\n")
        typer.echo(f"JSON: {json_file}")
    if plots is not None:
        from ecsgrpc_apps.bench.plots import write_plots

        for path in write_plots(doc, plots):
            typer.echo(f"plot: {path}")
    failed = [r.name for r in results if "error" in r.params]
    if failed:
        typer.echo(f"ecsgrpc bench: error: scenario(s) failed: {', '.join(failed)}", err=True)
        return 1
    return 0


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
