"""What the library costs a process: import + connect() and ``ecsgrpc probe``.

Each measurement is a fresh interpreter (``sys.executable`` unless
``--python``). The cases run in interleaved rounds (round ``r`` starts at
case ``r``, so none always follows another and a burst of load on a shared
machine hits every case alike), after one warm-up round that is not counted.
The table gives, per case, the median wall time, the median CPU time (user +
system: steadier than wall when other jobs share the CPUs), the largest
resident set of its runs, and the wall and CPU ratios to ``import grpc``
measured in the same rounds (only same-run ratios mean much on a shared
machine), with the load average before and after. The "floor" row is what
any grpc.aio client with health checks and Prometheus metrics loads.

The children are started by a small launcher process, not by this one: a
child's ``ru_maxrss`` starts at the resident set of the process it was forked
from (Linux keeps the high-water mark across ``exec``), so spawning from a
process that has grpc loaded would report at least its ~40 MB for every case.
The launcher is an interpreter without ``site`` (about 10 MB), the floor of
the RSS column. The probe is the ``ecsgrpc`` console script next to the
interpreter (what an ECS health check runs) against a real health server in
a process of its own.

    python -m ecsgrpc_apps.bench.costs          # or: ecsgrpc bench --costs
    python -m ecsgrpc_apps.bench.costs --python .venv-core/bin/python

``--python`` measures another interpreter, e.g. a venv where only
``pip install ecsgrpc`` ran (``make core-only`` leaves one in .venv-core):
what a service that adopts the library pays, without the extras.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Cost", "Run", "main", "measure"]

CONNECT_STATIC = "import ecsgrpc; ecsgrpc.connect('static:///127.0.0.1:1')"
CONNECT_DNS = "import ecsgrpc; ecsgrpc.connect('dns:///localhost:1')"
# What any balanced grpc.aio client with health checks and metrics must load.
FLOOR = "import grpc.aio, grpc_health.v1.health_pb2_grpc, prometheus_client"
# The targets of the issue that asked for these numbers.
TARGETS = {"connect static": 2.0, "connect dns": 3.0}
PROBE_SECONDS = 0.4
PROBE_MB = 45.0

# Runs each argv line (JSON) it reads and answers [wall, cpu, max_rss_mb, exit code].
# posix_spawn: the child's starting high-water mark is this small process's.
_LAUNCHER = """
import json, os, sys, time
if sys.argv[1] != "none":
    os.setpriority(os.PRIO_PROCESS, 0, int(sys.argv[1]))
null = os.open(os.devnull, os.O_RDWR)
for line in sys.stdin:
    argv = json.loads(line)
    started = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
        (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
        (os.POSIX_SPAWN_DUP2, null, 2)])
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    cpu = usage.ru_utime + usage.ru_stime
    code = os.waitstatus_to_exitcode(status)
    print(json.dumps([wall, cpu, usage.ru_maxrss / 1024, code]), flush=True)
"""

# A grpc server with the health service (SERVING) on 127.0.0.1; prints its port.
_HEALTH_SERVER = """
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2_grpc
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
server.wait_for_termination()
"""


@dataclass(frozen=True, slots=True)
class Cost:
    name: str
    seconds: float
    cpu_seconds: float
    max_rss_mb: float
    ratio: float
    cpu_ratio: float


@dataclass(frozen=True, slots=True)
class Run:
    """One measurement: the costs, and the load average (1 min) before and after."""

    costs: list[Cost]
    load_before: float
    load_after: float


@dataclass(frozen=True, slots=True)
class _Sample:
    wall: float
    cpu: float
    rss_mb: float
    code: int


# Bytecode is cached as after `pip install` (which compiles every module): a
# PYTHONDONTWRITEBYTECODE environment would recompile our modules on every
# start while grpc's come precompiled, measuring the compiler, not the import.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


class _Launcher:
    """The small process that starts every measured child."""

    def __init__(self, python: str, nice: int | None = None) -> None:
        self._python = python
        self._proc = subprocess.Popen(
            [python, "-I", "-S", "-c", _LAUNCHER, "none" if nice is None else str(nice)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_ENV,
            text=True,
        )

    def run(self, argv: Sequence[str]) -> _Sample:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(list(argv)) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the measuring launcher ({self._python}) ended")
        wall, cpu, rss, code = json.loads(line)
        return _Sample(wall, cpu, rss, code)

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)


@contextmanager
def health_server(python: str | None = None) -> Iterator[int]:
    """A real gRPC server with the health service on 127.0.0.1 (SERVING), in a
    process of its own (its threads do not run in the measuring process)."""
    server = subprocess.Popen(
        [python or sys.executable, "-c", _HEALTH_SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError("the health server did not start")
        yield int(port)
    finally:
        server.kill()
        server.wait(timeout=30)


def _probe_argv(py: str, port: int) -> list[str]:
    """The console script next to the interpreter, as ECS runs it; else ``-m``."""
    script = Path(py).parent / "ecsgrpc"
    address = f"127.0.0.1:{port}"
    if os.access(script, os.X_OK):
        return [str(script), "probe", address]
    return [py, "-m", "ecsgrpc", "probe", address]


def _rounds(
    cases: dict[str, list[str]], runs: int, launcher: _Launcher
) -> dict[str, list[_Sample]]:
    names = list(cases)
    samples: dict[str, list[_Sample]] = {name: [] for name in names}
    for r in range(runs + 1):  # round 0 is the warm-up (writes the bytecode caches)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            sample = launcher.run(cases[name])
            if sample.code != 0:
                raise RuntimeError(f"{' '.join(cases[name])} exited {sample.code}")
            if r > 0:
                samples[name].append(sample)
    return samples


def measure(runs: int = 10, python: str | None = None, nice: int | None = None) -> Run:
    """``runs`` interleaved rounds of fresh processes (the baseline in the same
    rounds), each in ``python`` (default: this interpreter), at scheduling
    priority ``nice`` when given (root may give a negative one: the measured
    processes then get a CPU ahead of other jobs, and wall time approaches what
    an idle machine shows; CPU time hardly changes)."""
    py = python or sys.executable
    cases = {
        "python (empty)": [py, "-c", "pass"],
        "import grpc": [py, "-c", "import grpc"],
        "floor: grpc.aio + health stubs + prometheus": [py, "-c", FLOOR],
        "connect static": [py, "-c", CONNECT_STATIC],
        "connect dns": [py, "-c", CONNECT_DNS],
    }
    load_before = os.getloadavg()[0]
    with health_server(py) as port:
        cases["ecsgrpc probe"] = _probe_argv(py, port)
        launcher = _Launcher(py, nice)
        try:
            samples = _rounds(cases, runs, launcher)
        finally:
            launcher.close()
    load_after = os.getloadavg()[0]
    wall = {n: statistics.median(s.wall for s in ss) for n, ss in samples.items()}
    cpu = {n: statistics.median(s.cpu for s in ss) for n, ss in samples.items()}
    base, base_cpu = wall["import grpc"], cpu["import grpc"]
    costs = [
        Cost(n, wall[n], cpu[n], max(s.rss_mb for s in ss), wall[n] / base, cpu[n] / base_cpu)
        for n, ss in samples.items()
    ]
    return Run(costs, load_before, load_after)


def _verdict(c: Cost) -> str:
    """The case's target and whether wall and CPU time meet it."""

    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    if c.name in TARGETS:
        limit = TARGETS[c.name]
        return f"within {limit:g}x: wall {mark(c.ratio <= limit)}, CPU {mark(c.cpu_ratio <= limit)}"
    if c.name == "ecsgrpc probe":
        return (
            f"< {PROBE_SECONDS} s, < {PROBE_MB:g} MB: wall {mark(c.seconds < PROBE_SECONDS)}, "
            f"CPU {mark(c.cpu_seconds < PROBE_SECONDS)}, RSS {mark(c.max_rss_mb < PROBE_MB)}"
        )
    return ""


def table(costs: Sequence[Cost]) -> str:
    lines = [
        "| case | median wall (s) | median CPU (s) | max RSS (MB) | wall vs `import grpc` "
        "| CPU vs `import grpc` | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in costs:
        lines.append(
            f"| {c.name} | {c.seconds:.3f} | {c.cpu_seconds:.3f} | {c.max_rss_mb:.1f} "
            f"| {c.ratio:.2f}x | {c.cpu_ratio:.2f}x | {_verdict(c)} |"
        )
    return "\n".join(lines)


def main(runs: int = 10, python: str | None = None, nice: int | None = None) -> int:
    if python is not None and not os.access(python, os.X_OK):
        error = f"costs: error: --python {python!r} is not an executable interpreter"
        print(error, file=sys.stderr)
        return 2
    if nice is not None and nice < 0 and os.geteuid() != 0:
        print(f"costs: error: --nice {nice}: a negative niceness needs root", file=sys.stderr)
        return 2
    run = measure(runs, python, nice)
    print(table(run.costs))
    where = python or sys.executable
    print(
        f"({runs} interleaved rounds after a warm-up, {os.cpu_count()} CPUs, "
        f"load average {run.load_before:.2f} before, {run.load_after:.2f} after, "
        f"niceness {'unchanged' if nice is None else nice}, "
        f"Python {sys.version.split()[0]}, {where})"
    )
    return 0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ecsgrpc_apps.bench.costs")
    parser.add_argument("--python", metavar="PATH", help="interpreter to measure (default: this)")
    parser.add_argument("--runs", type=int, default=10, metavar="N", help="rounds (10)")
    parser.add_argument(
        "--nice",
        type=int,
        metavar="N",
        help="niceness of the measured processes (-20..19; negative needs root)",
    )
    ns = parser.parse_args()
    if ns.runs < 1:
        parser.error(f"--runs must be >= 1, got {ns.runs}")
    if ns.nice is not None and not -20 <= ns.nice <= 19:
        parser.error(f"--nice must be in -20..19, got {ns.nice}")
    sys.exit(main(ns.runs, ns.python, ns.nice))
