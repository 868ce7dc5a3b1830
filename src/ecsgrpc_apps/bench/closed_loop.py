"""Closed-loop rounds, shared by the overhead and client_bound scenarios.

A round runs ``concurrency`` workers that each call again as soon as their
call ends, either for a time (``seconds``) or for a fixed number of calls in
all (``calls``: every contender then does the same work, so CPU per call does
not depend on how fast the round went). It measures calls/s, p50/p99 and the
client's CPU per call: this process's CPU time (``time.process_time()``, grpc's
threads included) over the round, divided by the calls made. A full garbage
collection runs before each round, so no round pays for another's garbage.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from ecsgrpc.errors import EcsGrpcError
from ecsgrpc_apps.bench.contenders import Client, conversation
from ecsgrpc_apps.bench.load import STREAM_WORDS, percentile

__all__ = ["OverheadResult", "median_round", "quartiles", "ratio", "run_round"]


@dataclass(frozen=True, slots=True)
class OverheadResult:
    """One (contender, kind, concurrency) round."""

    contender: str
    kind: str
    concurrency: int
    calls: int
    calls_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_call: float
    errors: int


async def _one(client: Client, kind: str, n: int) -> None:
    if kind == "unary":
        await client.unary(10.0)
        return
    count = 0
    async for _ in client.stream(conversation(STREAM_WORDS, f"o{n}"), 10.0):
        count += 1
    if count != STREAM_WORDS + 2:
        raise RuntimeError(f"stream returned {count} events")


async def run_round(
    client: Client,
    kind: str,
    concurrency: int,
    *,
    seconds: float | None = None,
    calls: int | None = None,
) -> OverheadResult:
    """One closed-loop round of ``kind`` calls: for ``seconds``, or ``calls`` calls in all."""
    if (seconds is None) == (calls is None):
        raise ValueError("run_round: give seconds or calls, not both")
    latencies: list[float] = []
    errors = 0
    left = calls if calls is not None else -1
    stop_at = 0.0  # set after the collection below: a round's time is all calls

    def more(first: bool) -> bool:
        nonlocal left
        if calls is None:  # every worker calls at least once, however late it started
            return first or time.perf_counter() < stop_at
        if left <= 0:
            return False
        left -= 1
        return True

    async def worker(w: int) -> None:
        nonlocal errors
        n = 0
        while more(n == 0):
            n += 1
            started = time.perf_counter()
            try:
                await _one(client, kind, w * 1_000_000 + n)
            except (grpc.RpcError, EcsGrpcError, RuntimeError):
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    stop_at = wall0 + (seconds if seconds is not None else 0.0)
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    done = len(latencies)
    return OverheadResult(
        contender=client.name,
        kind=kind,
        concurrency=concurrency,
        calls=done,
        calls_per_second=done / wall,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        cpu_us_per_call=cpu / max(done, 1) * 1e6,
        errors=errors,
    )


def median_round(runs: Sequence[OverheadResult]) -> OverheadResult:
    """The median round by throughput."""
    return sorted(runs, key=lambda r: r.calls_per_second)[len(runs) // 2]


def ratio(value: float, base: float) -> float | None:
    return value / base if base else None


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(25th percentile, median, 75th percentile); all the median for fewer than 2 values."""
    if len(values) < 2:
        only = values[0] if values else float("nan")
        return only, only, only
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3
