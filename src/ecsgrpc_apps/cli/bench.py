"""``ecsgrpc bench``: the benchmark and fault suite against the baselines."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ecsgrpc.cli.base import CommandParser, add_version
from ecsgrpc.errors import ConfigError

_DESCRIPTION = """Run ecsgrpc against gRPC's native balancing and a plain one-channel client,
side by side.
Scenarios: overhead, client_bound, task_killed, rolling_deploy, scale_out,
slow_task, discovery_outage, client_scale, silent_failure (its black holes need
iptables and root), gateway_overload, xds_fleet. Prints markdown tables and the targets.
grpc's core logs each GOAWAY (kills, deploys) on stderr; set GRPC_VERBOSITY=ERROR
to hide those lines."""


def add_parser(commands: Any) -> CommandParser:
    parser: CommandParser = commands.add_parser(
        "bench", help="Benchmarks and faults against the baselines.", description=_DESCRIPTION
    )
    add_version(parser)
    parser.add_argument("--quick", action="store_true", help="Short durations (under 3 minutes).")
    parser.add_argument(
        "--json", dest="json_file", type=Path, metavar="FILE", help="Write the numbers as JSON."
    )
    parser.add_argument("--plots", type=Path, metavar="DIR", help="Write PNG plots here.")
    parser.add_argument("--only", metavar="A,B", help="Comma-separated scenarios (default: all).")
    parser.add_argument(
        "--servers",
        type=int,
        metavar="N",
        help="Agent processes of the client_bound scenario, each pinned to a core of its own "
        "when there are enough (default: half the cores, 2 to 8).",
    )
    parser.add_argument(
        "--seconds-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="Multiply every scenario's durations by X, in (0, 10] (default 1; "
        "docs/benchmarks.md's 60 s gateway_overload steps are 3).",
    )
    parser.add_argument(
        "--costs",
        action="store_true",
        help="Measure import/connect/probe costs only (docs/benchmarks.md).",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.costs:
        from ecsgrpc_apps.bench.costs import main as costs_main

        return costs_main()
    return bench(
        quick=args.quick,
        json_file=args.json_file,
        plots=args.plots,
        only=args.only,
        servers=args.servers,
        seconds_scale=args.seconds_scale,
    )


def bench(
    *,
    quick: bool,
    json_file: Path | None,
    plots: Path | None,
    only: str | None,
    servers: int | None,
    seconds_scale: float,
) -> int:
    """Run the suite; 1 when a scenario failed."""
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
    print(markdown(results))
    print(f"Ran in {elapsed:.0f}s on {env['cpus']} CPUs ({env['cpu_model']}).")
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"JSON: {json_file}")
    if plots is not None:
        from ecsgrpc_apps.bench.plots import write_plots

        for path in write_plots(doc, plots):
            print(f"plot: {path}")
    failed = [r.name for r in results if "error" in r.params]
    if failed:
        print(f"ecsgrpc bench: error: scenario(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
