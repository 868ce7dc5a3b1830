"""Scenario 7, scale of the client: 10, 100 and 1,000 endpoints, without connecting.

For each size, ecsgrpc's balancer holds that many subchannels (each with a
real ``grpc.aio`` channel that is never asked to connect) and is fed a new
snapshot in which 1 % of the endpoints left and 1 % arrived, as a Cloud Map
poll would bring. Measured (median of rounds):

* ``snapshot_ms``: ``EndpointSet.of`` + ``diff`` for the new answer;
* ``apply_ms``: ``Balancer.apply`` of it (subchannels opened and drained,
  outlier tracking, one picker rebuild);
* ``resolve_rebuild_ms``: the two together (the issue's "resolution + picker
  rebuild"; target < 20 ms at 1,000);
* ``rebuild_ms``: one picker rebuild alone (``Balancer._rebuild``: the
  picker plus the endpoint gauges), which runs once per event-loop tick in
  which subchannels changed state (changes in the same tick share one);
  ``startup_rebuild_ms`` is ``n`` of them, the worst case of a cold start
  with ``n`` endpoints turning READY each in a tick of its own;
* ``pick_us``: one ``pick()`` of each policy over ``n`` ready endpoints;
* ``bytes_per_endpoint``: Python heap per subchannel (tracemalloc), and
  ``rss_bytes_per_endpoint``: the process's resident memory growth per
  subchannel, which includes grpc's C core (idle channels, no connection);
  both measured in a fresh process, after a warm-up, so freed memory of an
  earlier measurement is not counted as free.

This reaches into the balancer's private state to make subchannels READY
without a server: a benchmark of internals, not an example of use.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry

from ecsgrpc.balancing.balancer import Balancer
from ecsgrpc.balancing.outlier import OutlierDetector
from ecsgrpc.balancing.subchannel import Connectivity, Health, Subchannel
from ecsgrpc.endpoints import Endpoint, EndpointSet
from ecsgrpc.metrics import client_metrics
from ecsgrpc_apps.bench.results import Row, ScenarioResult, check
from ecsgrpc_apps.bench.settings import Context

__all__ = ["run"]

NAME = "client_scale"
POLICIES = ("round_robin", "least_request")
COLUMNS = (
    "snapshot_ms",
    "apply_ms",
    "resolve_rebuild_ms",
    "rebuild_ms",
    "startup_rebuild_ms",
    "pick_us",
    "bytes_per_endpoint",
    "rss_bytes_per_endpoint",
)
_PICKS = 20_000


def _endpoint(i: int) -> Endpoint:
    # 127.1.x.y: loopback, and nothing listens there (never connected anyway).
    attrs = {
        "instance_id": f"{i:032x}",
        "availability_zone": f"us-east-1{'abc'[i % 3]}",
        "AWS_INSTANCE_IPV4": f"127.1.{i // 256}.{i % 256}",
        "AWS_INSTANCE_PORT": "50051",
        "ECS_CLUSTER_NAME": "workflow",
        "ECS_SERVICE_NAME": "workflow-agent",
    }
    return Endpoint(f"127.1.{i // 256}.{i % 256}", 50051, attrs)


def _answer(n: int, offset: int) -> list[Endpoint]:
    return [_endpoint(i) for i in range(offset, offset + n)]


def _rss() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _lazy_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address)


def _ready(sub: Subchannel) -> Subchannel:
    sub.connectivity = Connectivity.READY
    sub.health = Health.SERVING
    return sub


def _balancer(policy: str) -> Balancer:
    return Balancer(
        target=f"scale-{policy}",
        policy=policy,
        channel_factory=_lazy_channel,
        metrics=client_metrics(CollectorRegistry()),
        outlier=OutlierDetector(),
        zone_policy=None,
        health_check=False,
        health_service="",
    )


def _median_ms(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _subchannels(n: int) -> list[Subchannel]:
    return [
        _ready(Subchannel(ep, channel_factory=_lazy_channel, on_change=lambda _s: None))
        for ep in _answer(n, 0)
    ]


async def memory_probe(n: int) -> tuple[float, float]:
    """(Python heap, resident memory) bytes per subchannel; run it in a fresh process."""
    warm = _subchannels(10)  # load grpc's and the balancer's one-time allocations
    gc.collect()
    rss0 = _rss()
    tracemalloc.start()
    subs = _subchannels(n)
    heap = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss = _rss() - rss0
    for sub in [*warm, *subs]:
        await sub.aclose()
    return heap / n, rss / n


async def _memory(n: int) -> tuple[float, float]:
    code = (
        "import asyncio\n"
        "from ecsgrpc_apps.bench.client_scale import memory_probe\n"
        f"print(*asyncio.run(memory_probe({n})))\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe for {n} endpoints exited {proc.returncode}")
    heap, rss = out.split()
    return float(heap), float(rss)


async def _measure(n: int, policy: str, rounds: int) -> dict[str, float]:
    balancer = _balancer(policy)
    subs = _subchannels(n)
    balancer._subchannels.update((s.key, s) for s in subs)
    balancer._rebuild()
    rebuild_ms = _median_ms(balancer._rebuild, rounds)
    picker = balancer.picker
    t0 = time.perf_counter()
    for _ in range(_PICKS):
        picker.pick()
    pick_us = (time.perf_counter() - t0) / _PICKS * 1e6

    churn = max(1, n // 100)
    previous = EndpointSet.of(_answer(n, 0), source="cloudmap")
    raw = _answer(n, churn)  # the first `churn` gone, `churn` new at the end
    snapshot_ms = _median_ms(lambda: previous.diff(EndpointSet.of(raw, source="cloudmap")), rounds)
    snapshots = [EndpointSet.of(raw, source="cloudmap"), previous]
    applied = []
    for i in range(max(3, rounds // 3)):  # back and forth: each apply has the 1 % churn
        t0 = time.perf_counter()
        balancer.apply(snapshots[i % 2])
        applied.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0)
    apply_ms = statistics.median(applied)
    await balancer.aclose()
    for sub in subs:
        await sub.aclose()
    return {
        "snapshot_ms": snapshot_ms,
        "apply_ms": apply_ms,
        "resolve_rebuild_ms": snapshot_ms + apply_ms,
        "rebuild_ms": rebuild_ms,
        "startup_rebuild_ms": rebuild_ms * n,
        "pick_us": pick_us,
    }


async def run(ctx: Context) -> ScenarioResult:
    s = ctx.settings
    result = ScenarioResult(
        NAME,
        "Scale of the client: endpoints held, 1 % churn applied, picks, memory",
        COLUMNS,
        params={"sizes": list(s.scale_sizes), "rounds": s.scale_rounds, "picks": _PICKS},
    )
    memory: dict[int, tuple[float, float]] = {}
    for n in s.scale_sizes:
        for policy in POLICIES:
            ctx.progress(f"{NAME}: {n} endpoints, {policy}")
            metrics = await _measure(n, policy, s.scale_rounds)
            if n not in memory:
                memory[n] = await _memory(n)
            metrics["bytes_per_endpoint"], metrics["rss_bytes_per_endpoint"] = memory[n]
            await asyncio.sleep(0)
            name = f"ecsgrpc_{policy}"
            case = f"{n} endpoints"
            result.rows.append(Row(name, dict(metrics), case=case))
            if n == 1000:
                result.targets.append(
                    check(
                        NAME,
                        name,
                        "resolve_rebuild_ms",
                        metrics["resolve_rebuild_ms"],
                        "<",
                        20.0,
                        case=case,
                    )
                )
                result.targets.append(
                    check(NAME, name, "pick_us", metrics["pick_us"], "<", 20.0, case=case)
                )
    result.notes.append("Only ecsgrpc has a client-side picker to measure; other contenders n/a.")
    return result
