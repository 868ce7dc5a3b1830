"""Python function calls per call, ecsgrpc against native round_robin (cProfile).

A count that does not depend on the machine's load: two agent processes, one
contender at a time, a fixed number of calls at concurrency 1 after a
warm-up, cProfile's call count (every function and built-in; a coroutine's
every resumption counts as a call) divided by the calls, including the work
they leave for later (ecsgrpc's batched durations, folded at the end). Prints each
contender's total and, with ``--diff``, the functions whose count per call
differs from native's.

    .venv/bin/python scripts/call_profile.py [--diff] [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
from typing import Any

from ecsgrpc.metrics import client_metrics
from ecsgrpc_apps.bench.contenders import CONTENDERS, Client, conversation
from ecsgrpc_apps.bench.fleet import AgentFleet
from ecsgrpc_apps.bench.load import STREAM_WORDS

_NAMES = ("native_round_robin", "ecsgrpc_round_robin", "ecsgrpc_least_request")


async def _one(client: Client, kind: str, n: int) -> None:
    if kind == "unary":
        await client.unary(10.0)
        return
    async for _ in client.stream(conversation(STREAM_WORDS, f"p{n}"), 10.0):
        pass


def _where(key: tuple[str, int, str]) -> str:
    path, line, name = key
    for marker in ("site-packages/", "src/", "python3.11/"):
        path = path.split(marker)[-1]
    return f"{path}:{line}({name})"


def _deferred(client: Client) -> Any:
    """The work a client defers past its calls (ecsgrpc's batched call durations,
    folded into the histogram every 4,096 calls or at a scrape), to be counted."""
    registry = getattr(client, "_registry", None)
    return None if registry is None else client_metrics(registry).duration.fold


async def _profile(client: Client, kind: str, calls: int) -> dict[str, float]:
    for i in range(200):
        await _one(client, kind, i)
    fold = _deferred(client)
    if fold is not None:
        fold()
    profile = cProfile.Profile()
    profile.enable()
    for i in range(calls):
        await _one(client, kind, i)
    if fold is not None:  # what these calls left for later is their cost too
        fold()
    profile.disable()
    stats: Any = pstats.Stats(profile)
    return {_where(k): v[1] / calls for k, v in stats.stats.items()}


async def main(calls: int, diff: bool) -> None:
    fleet = AgentFleet(2, first_host=97, dns=False)
    counts: dict[tuple[str, str], dict[str, float]] = {}
    try:  # a failed start stops the agents that did start
        spec = await fleet.start()
        for contender in (c for c in CONTENDERS if c.name in _NAMES):
            client = await contender.open(spec)
            try:
                for kind in ("unary", "stream"):
                    n = calls if kind == "unary" else max(1, calls // 10)
                    counts[contender.name, kind] = await _profile(client, kind, n)
            finally:
                await client.aclose()
    finally:
        await fleet.aclose()
    for kind in ("unary", "stream"):
        native = counts[_NAMES[0], kind]
        for name in _NAMES:
            print(f"{kind:6s} {name:22s} {sum(counts[name, kind].values()):8.1f} calls per call")
        if diff:
            ours = counts[_NAMES[1], kind]
            rows = sorted(
                ((ours.get(k, 0.0) - native.get(k, 0.0), k) for k in set(native) | set(ours)),
                reverse=True,
            )
            for delta, where in rows:
                if abs(delta) >= 0.5:
                    print(f"  {delta:+8.2f} {where}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="unary calls (streams: a tenth)")
    parser.add_argument("--diff", action="store_true", help="per-function difference to native")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.diff))
