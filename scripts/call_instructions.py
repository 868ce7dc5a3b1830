"""Client instructions per call, ecsgrpc against native round_robin (callgrind).

A cost measure that does not depend on the machine's load or its other tenants:
the client process runs under valgrind's callgrind, which counts the machine
instructions every thread of the process executes (Python, grpc's C core, the
kernel excluded). The agents run natively in their own processes.

Each contender runs in a fresh client process: a warm-up, then callgrind's
counters are zeroed, ``--calls`` calls are made at ``--concurrency`` (ecsgrpc's
deferred histogram fold included), the counters are dumped, the process stays
idle for as long as the calls took, and they are dumped again. Under callgrind
a call takes ~50x its native wall time, so work driven by the clock (grpc's
timers, ecsgrpc's 0.1 s ticker and health watches) is counted ~50x more often
per call than it runs at native speed; the idle dump measures it, and the
report gives both:

* ``per call``: (calls window - idle window) / calls: what the calls cost;
* ``idle/s``: instructions per second of the idle window, the clock-driven cost
  (at native speed, divide by the calls per second to get its share per call).

Contenders are interleaved (``--rounds`` rounds, each contender once per round,
order rotated) and the median per call is reported with each contender's ratio
to native round_robin. Needs ``valgrind`` and a C compiler (``gcc``) for the
tiny client-request shim; about 1-3 minutes per contender and round.

    .venv/bin/python scripts/call_instructions.py [--calls N] [--concurrency C]
        [--kind unary|stream] [--rounds R] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_NAMES = ("native_round_robin", "ecsgrpc_round_robin", "ecsgrpc_least_request")

_SHIM = r"""
#include <valgrind/callgrind.h>
void cg_zero(void) { CALLGRIND_ZERO_STATS; }
void cg_dump(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
"""


def _build_shim(directory: Path) -> Path:
    """Compile the two callgrind client requests into a shared object (no-ops natively)."""
    source = directory / "cgshim.c"
    library = directory / "cgshim.so"
    source.write_text(_SHIM)
    subprocess.run(
        ["gcc", "-O1", "-shared", "-fPIC", "-o", str(library), str(source)],
        check=True,
        capture_output=True,
    )
    return library


# --- the client process (runs under callgrind) --------------------------------


async def _child(args: argparse.Namespace) -> None:
    from ecsgrpc.metrics import client_metrics
    from ecsgrpc_apps.bench.contenders import CONTENDERS, Fleet, conversation
    from ecsgrpc_apps.bench.load import STREAM_WORDS

    shim = ctypes.CDLL(args.shim)
    shim.cg_dump.argtypes = [ctypes.c_char_p]
    from ecsgrpc_apps.bench import contenders

    # Under callgrind everything runs ~50x slower, first imports included.
    contenders._READY_TIMEOUT = 600.0
    contender = next(c for c in CONTENDERS if c.name == args.contender)
    client = await contender.open(Fleet(tuple(args.addresses.split(","))))
    registry = getattr(client, "_registry", None)
    fold = None if registry is None else client_metrics(registry).duration.fold

    async def one(n: int) -> None:
        if args.kind == "unary":
            await client.unary(30.0)
            return
        async for _ in client.stream(conversation(STREAM_WORDS, f"p{n}"), 30.0):
            pass

    async def worker(count: int, base: int) -> None:
        for i in range(count):
            await one(base + i)

    async def run(calls: int) -> None:
        per, extra = divmod(calls, args.concurrency)
        await asyncio.gather(
            *(worker(per + (1 if w < extra else 0), w * 1_000_000) for w in range(args.concurrency))
        )

    try:
        await run(args.warmup)
        if fold is not None:
            fold()
        shim.cg_zero()
        start = time.perf_counter()
        await run(args.calls)
        if fold is not None:  # what these calls left for later is their cost too
            fold()
        elapsed = time.perf_counter() - start
        shim.cg_dump(b"calls")
        await asyncio.sleep(elapsed)
        shim.cg_dump(b"idle")
        print(json.dumps({"elapsed": elapsed}))
    finally:
        await client.aclose()


# --- the parent ---------------------------------------------------------------


def _totals(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def _measure(
    args: argparse.Namespace, name: str, addresses: str, shim: Path, out: Path
) -> dict[str, float]:
    prefix = out / f"{name}.{time.monotonic_ns()}"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--fair-sched=yes",
        f"--callgrind-out-file={prefix}.%p",
        sys.executable,
        __file__,
        "--child",
        "--contender",
        name,
        "--addresses",
        addresses,
        "--shim",
        str(shim),
        "--kind",
        args.kind,
        "--calls",
        str(args.calls),
        "--warmup",
        str(args.warmup),
        "--concurrency",
        str(args.concurrency),
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        stdout, stderr = proc.communicate(timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: exit {proc.returncode}: {stderr[-2000:]}")
    elapsed = json.loads(stdout.strip().splitlines()[-1])["elapsed"]
    # callgrind names the requested dumps <file>.<n> (1, 2), the one at exit <file>
    base = Path(f"{prefix}.{proc.pid}")
    numbered = [Path(f"{base}.{n}") for n in (1, 2)]
    if not all(p.exists() for p in numbered):
        raise RuntimeError(f"{name}: expected dumps {numbered[0]} and .2: {stderr[-2000:]}")
    calls_ir, idle_ir = _totals(numbered[0]), _totals(numbered[1])
    return {
        "per_call": (calls_ir - idle_ir) / args.calls,
        "gross_per_call": calls_ir / args.calls,
        "idle_per_s": idle_ir / elapsed,
        "elapsed_s": elapsed,
    }


async def _fleet_addresses(first_host: int) -> tuple[Any, str]:
    from ecsgrpc_apps.bench.fleet import AgentFleet

    fleet = AgentFleet(2, first_host=first_host, dns=False)
    spec = await fleet.start()
    return fleet, ",".join(spec.addresses)


def main(args: argparse.Namespace) -> None:
    if shutil.which("valgrind") is None or shutil.which("gcc") is None:
        raise SystemExit("call_instructions: needs valgrind and gcc (apt-get install valgrind gcc)")
    loop = asyncio.new_event_loop()
    fleet, addresses = loop.run_until_complete(_fleet_addresses(args.first_host))
    names = tuple(args.contenders.split(","))
    results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    try:
        with tempfile.TemporaryDirectory(prefix="ecsgrpc-cg-") as scratch:
            tmp = args.keep or scratch
            Path(tmp).mkdir(parents=True, exist_ok=True)
            shim = _build_shim(Path(tmp))
            for r in range(args.rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    row = _measure(args, name, addresses, shim, Path(tmp))
                    results[name].append(row)
                    print(
                        f"round {r + 1} {name:22s} {row['per_call']:12,.0f} instr/call "
                        f"(gross {row['gross_per_call']:,.0f}, idle {row['idle_per_s']:,.0f}/s, "
                        f"{row['elapsed_s']:.1f} s)",
                        flush=True,
                    )
    finally:
        loop.run_until_complete(fleet.aclose())
        loop.close()
    native = statistics.median(r["per_call"] for r in results[names[0]])
    summary: dict[str, Any] = {
        "kind": args.kind,
        "calls": args.calls,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "contenders": {},
    }
    print(f"\n{args.kind} c={args.concurrency}, {args.calls} calls, median of {args.rounds}:")
    for name in names:
        per_call = statistics.median(r["per_call"] for r in results[name])
        idle = statistics.median(r["idle_per_s"] for r in results[name])
        summary["contenders"][name] = {
            "per_call": per_call,
            "x_native": per_call / native,
            "idle_per_s": idle,
            "rounds": results[name],
        }
        print(
            f"  {name:22s} {per_call:12,.0f} instr/call  {per_call / native:.3f}x"
            f"  idle {idle:,.0f}/s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--calls", type=int, default=400, help="measured calls per contender (default 400)"
    )
    parser.add_argument(
        "--warmup", type=int, default=100, help="calls before counting (default 100)"
    )
    parser.add_argument("--concurrency", type=int, default=1, help="calls in flight (default 1)")
    parser.add_argument("--kind", choices=("unary", "stream"), default="unary")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--contenders",
        default=",".join(_NAMES),
        help=f"comma-separated, native_round_robin first (default {','.join(_NAMES)})",
    )
    parser.add_argument(
        "--first-host", type=int, default=91, help="agents on 127.0.0.N, N+1 (default 91)"
    )
    parser.add_argument("--json", help="write the results here")
    parser.add_argument(
        "--keep", help="keep callgrind's dumps in this folder (for callgrind_annotate)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--addresses", help=argparse.SUPPRESS)
    parser.add_argument("--shim", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    unknown = sorted(set(ns.contenders.split(",")) - set(_NAMES))
    if unknown or not ns.contenders.startswith(_NAMES[0]):
        parser.error(f"--contenders: {ns.contenders!r}: from {', '.join(_NAMES)}, native first")
    for flag in ("calls", "warmup", "concurrency", "rounds"):
        if getattr(ns, flag) < (0 if flag == "warmup" else 1):
            parser.error(f"--{flag}: must be at least 1, got {getattr(ns, flag)}")
    if ns.child:
        asyncio.run(_child(ns))
    else:
        main(ns)
