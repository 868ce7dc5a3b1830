"""What the library costs a process: import + connect() and ``ecsgrpc probe``.

Each measurement is a fresh interpreter (``sys.executable``), run ``runs``
times; the table gives the median wall time and the largest resident set
(``ru_maxrss`` of the child), and the ratio to ``import grpc`` measured in the
same run (this machine is shared and noisy: only same-run ratios mean much).

    python -m ecsgrpc_apps.bench.costs          # or: ecsgrpc bench --costs
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2_grpc

__all__ = ["Cost", "main", "measure"]

CONNECT_STATIC = "import ecsgrpc; ecsgrpc.connect('static:///127.0.0.1:1')"
CONNECT_DNS = "import ecsgrpc; ecsgrpc.connect('dns:///localhost:1')"
# The targets of the issue that asked for these numbers.
TARGETS = {"connect static": 2.0, "connect dns": 3.0}
PROBE_SECONDS = 0.4
PROBE_MB = 45.0


@dataclass(frozen=True, slots=True)
class Cost:
    name: str
    seconds: float
    max_rss_mb: float
    ratio: float


def _run(argv: Sequence[str]) -> tuple[float, float, int]:
    """(wall seconds, max RSS in MB, exit code) of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, child.returncode


def _median(argv: Sequence[str], runs: int) -> tuple[float, float]:
    results = [_run(argv) for _ in range(runs)]
    failed = [code for _, _, code in results if code != 0]
    if failed:
        raise RuntimeError(f"{' '.join(argv)} exited {failed[0]}")
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


@contextmanager
def health_server() -> Iterator[int]:
    """A real gRPC server with the health service on 127.0.0.1 (SERVING)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(None)


def measure(runs: int = 10) -> list[Cost]:
    """Median of ``runs`` fresh processes for each case (the baseline in the same run)."""
    py = sys.executable
    cases = {
        "python (empty)": [py, "-c", "pass"],
        "import grpc": [py, "-c", "import grpc"],
        "connect static": [py, "-c", CONNECT_STATIC],
        "connect dns": [py, "-c", CONNECT_DNS],
    }
    with health_server() as port:
        cases["ecsgrpc probe"] = [py, "-m", "ecsgrpc", "probe", f"127.0.0.1:{port}"]
        measured = {name: _median(argv, runs) for name, argv in cases.items()}
    base = measured["import grpc"][0]
    return [Cost(name, s, mb, s / base) for name, (s, mb) in measured.items()]


def table(costs: Sequence[Cost]) -> str:
    lines = [
        "| case | median wall (s) | max RSS (MB) | vs `import grpc` | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for c in costs:
        target = (
            f"within {TARGETS[c.name]:g}x"
            if c.name in TARGETS
            else f"< {PROBE_SECONDS} s, < {PROBE_MB:g} MB"
            if c.name == "ecsgrpc probe"
            else ""
        )
        lines.append(
            f"| {c.name} | {c.seconds:.3f} | {c.max_rss_mb:.0f} | {c.ratio:.2f}x | {target} |"
        )
    return "\n".join(lines)


def main(runs: int = 10) -> int:
    costs = measure(runs)
    print(table(costs))
    print(f"({runs} runs each, {os.cpu_count()} CPUs, Python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
