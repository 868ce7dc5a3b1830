"""Issue 4's benchmark: BalancedChannel vs raw grpc.aio and native round_robin.

Run: .venv/bin/python bench/bench_channel.py [--seconds 2] [--rounds 3]
Prints a markdown table; throughput and p50 as ratios to native round_robin.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from ecsgrpc.bench.overhead import ratios, run_overhead
from ecsgrpc.local.process import start_agent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        agents = [start_agent(f"127.0.0.{i}", Path(tmp)) for i in (2, 3, 4)]
        try:
            results = asyncio.run(
                run_overhead(
                    agents,
                    seconds=args.seconds,
                    rounds=args.rounds,
                    progress=lambda s: print("..", s, flush=True),
                )
            )
        finally:
            for agent in agents:
                agent.stop()
    columns = [
        "kind",
        "conc",
        "contender",
        "calls/s",
        "x native",
        "p50 ms",
        "p50 x native",
        "p99 ms",
        "CPU us/call",
        "errors",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in ratios(results):
        print(
            f"| {row['kind']} | {row['concurrency']} | {row['contender']} | "
            f"{row['calls_per_second']:.0f} | {row.get('throughput_ratio') or 0:.2f} | "
            f"{row['p50_ms']:.2f} | {row.get('p50_ratio') or 0:.2f} | {row['p99_ms']:.2f} | "
            f"{row['cpu_us_per_call']:.0f} | {row['errors']} |"
        )


if __name__ == "__main__":
    main()
