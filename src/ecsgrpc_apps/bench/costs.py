"""What the library costs a process: import + connect() and ``ecsgrpc probe``.

Each measurement is a fresh interpreter (``sys.executable``), run ``runs``
times; the table gives the median wall time, the median CPU time (user +
system: steadier than wall on a loaded machine), the largest resident set
(``ru_maxrss`` of the child), and the ratios to ``import grpc`` measured in
the same run (only same-run ratios mean much on a shared machine). The
"floor" row is what any grpc.aio client with health checks and Prometheus
metrics loads.

    python -m ecsgrpc_apps.bench.costs          # or: ecsgrpc bench --costs
    python -m ecsgrpc_apps.bench.costs --python .venv-core/bin/python

``--python`` measures another interpreter, e.g. a venv where only
``pip install ecsgrpc`` ran (``make core-only`` leaves one in .venv-core):
what a service that adopts the library pays, without the extras.
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
# What any balanced grpc.aio client with health checks and metrics must load.
FLOOR = "import grpc.aio, grpc_health.v1.health_pb2_grpc, prometheus_client"
# The targets of the issue that asked for these numbers.
TARGETS = {"connect static": 2.0, "connect dns": 3.0}
PROBE_SECONDS = 0.4
PROBE_MB = 45.0


@dataclass(frozen=True, slots=True)
class Cost:
    name: str
    seconds: float
    cpu_seconds: float
    max_rss_mb: float
    ratio: float
    cpu_ratio: float


@dataclass(frozen=True, slots=True)
class _Sample:
    wall: float
    cpu: float
    rss_mb: float
    code: int


def _run(argv: Sequence[str]) -> _Sample:
    """Wall and CPU seconds, max RSS and exit code of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_ENV)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return _Sample(
        time.perf_counter() - started,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        child.returncode,
    )


# Bytecode is cached as after `pip install` (which compiles every module): a
# PYTHONDONTWRITEBYTECODE environment would recompile our modules on every
# start while grpc's come precompiled, measuring the compiler, not the import.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _median(argv: Sequence[str], runs: int) -> tuple[float, float, float]:
    _run(argv)  # warm-up: writes the bytecode cache, not counted
    samples = [_run(argv) for _ in range(runs)]
    failed = [s.code for s in samples if s.code != 0]
    if failed:
        raise RuntimeError(f"{' '.join(argv)} exited {failed[0]}")
    return (
        statistics.median(s.wall for s in samples),
        statistics.median(s.cpu for s in samples),
        max(s.rss_mb for s in samples),
    )


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


def measure(runs: int = 10, python: str | None = None) -> list[Cost]:
    """Median of ``runs`` fresh processes for each case (the baseline in the same
    run), each in ``python`` (default: this interpreter)."""
    py = python or sys.executable
    cases = {
        "python (empty)": [py, "-c", "pass"],
        "import grpc": [py, "-c", "import grpc"],
        "floor: grpc.aio + health stubs + prometheus": [py, "-c", FLOOR],
        "connect static": [py, "-c", CONNECT_STATIC],
        "connect dns": [py, "-c", CONNECT_DNS],
    }
    with health_server() as port:
        cases["ecsgrpc probe"] = [py, "-m", "ecsgrpc", "probe", f"127.0.0.1:{port}"]
        measured = {name: _median(argv, runs) for name, argv in cases.items()}
    base, base_cpu, _ = measured["import grpc"]
    return [
        Cost(name, wall, cpu, mb, wall / base, cpu / base_cpu)
        for name, (wall, cpu, mb) in measured.items()
    ]


def table(costs: Sequence[Cost]) -> str:
    lines = [
        "| case | median wall (s) | median CPU (s) | max RSS (MB) | wall vs `import grpc` "
        "| CPU vs `import grpc` | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
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
            f"| {c.name} | {c.seconds:.3f} | {c.cpu_seconds:.3f} | {c.max_rss_mb:.0f} "
            f"| {c.ratio:.2f}x | {c.cpu_ratio:.2f}x | {target} |"
        )
    return "\n".join(lines)


def main(runs: int = 10, python: str | None = None) -> int:
    if python is not None and not os.access(python, os.X_OK):
        error = f"costs: error: --python {python!r} is not an executable interpreter"
        print(error, file=sys.stderr)
        return 2
    costs = measure(runs, python)
    print(table(costs))
    where = python or sys.executable
    print(f"({runs} runs each, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {where})")
    return 0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ecsgrpc_apps.bench.costs")
    parser.add_argument("--python", metavar="PATH", help="interpreter to measure (default: this)")
    parser.add_argument("--runs", type=int, default=10, metavar="N", help="runs per case (10)")
    ns = parser.parse_args()
    if ns.runs < 1:
        parser.error(f"--runs must be >= 1, got {ns.runs}")
    sys.exit(main(ns.runs, ns.python))
