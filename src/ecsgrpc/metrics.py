"""Prometheus instruments, all in one place.

Every family takes a ``registry`` so tests and embedding applications can
isolate them; the default is prometheus_client's global registry. Asking twice
for the same family on the same registry returns the same instruments.
"""

from __future__ import annotations

import threading
import weakref
from bisect import bisect_left
from collections import Counter as _Tally
from collections import deque
from dataclasses import dataclass
from functools import partial, reduce
from itertools import repeat, starmap
from math import isnan
from operator import add
from typing import Any, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

__all__ = [
    "BatchedHistogram",
    "ClientMetrics",
    "ResolverMetrics",
    "ServerMetrics",
    "client_metrics",
    "resolver_metrics",
    "server_metrics",
]

# Latency buckets from 0.5 ms to 60 s: unary calls on a VPC are ~1 ms, model
# streams can take tens of seconds.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class BatchedHistogram(Histogram):
    """A labelled Histogram that also takes observations in batches, off the hot path.

    ``batch(*labelvalues)`` returns a deque; appending a value to it is an
    observation (no lock, no Python call), folded into the histogram before
    every collect (a scrape, ``get_sample_value``), so what is exported is
    exactly what ``labels(...).observe(value)`` would have exported. Deque
    ``append``/``popleft`` are atomic, so a scrape from another thread loses
    nothing and counts nothing twice. Whoever appends bounds the batch by
    calling :meth:`fold` when it grows long.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batches: dict[tuple[str, ...], deque[float]] = {}
        self._folding = threading.Lock()  # one fold at a time (the loop's, a scrape's)

    def batch(self, *labelvalues: str) -> deque[float]:
        """The batch of the child with these label values (created on first use)."""
        found = self._batches.get(labelvalues)
        if found is None:
            self.labels(*labelvalues)  # the child exists (exported) from now on
            found = self._batches.setdefault(labelvalues, deque())
        return found

    def fold(self) -> None:
        """Observe every batched value into its child.

        Exactly what ``observe()`` value by value would record (the bucket each
        value falls in; the sum added to in the same order), without a Python
        step per value: the values are taken, bisected into buckets, counted
        and summed by C loops (``starmap``, ``map``, ``Counter``, ``reduce``),
        and each bucket incremented once per fold, instead of ``observe()``'s
        Python calls and two locked increments per value (which would put back
        on every call what batching took off). Values appended meanwhile (by
        another thread) stay for the next fold. Folds take turns; the child's
        ``observe()`` may still be used from the thread that folds."""
        with self._folding:
            for labelvalues, pending in list(self._batches.items()):
                n = len(pending)
                if not n:
                    continue
                # n values from the left, each popped atomically (the loop's
                # thread may append on the right meanwhile).
                values = list(starmap(pending.popleft, repeat((), n)))
                child = self.labels(*labelvalues)
                total = reduce(add, values, child._sum.get())  # observe()'s order
                if isnan(total):  # a NaN among them: observe() puts it in no bucket
                    values = [v for v in values if not isnan(v)]
                bounds = child._upper_bounds  # ends with +Inf: every value has a bucket
                counts = _Tally(map(partial(bisect_left, bounds), values))
                child._sum.set(total)
                buckets = child._buckets
                for i, count in counts.items():
                    buckets[i].inc(count)

    def collect(self) -> Any:
        self.fold()
        return super().collect()


@dataclass(frozen=True)
class ServerMetrics:
    """Server-side twins of the client metrics (``ecsgrpc_server_*``)."""

    in_flight: Gauge
    calls: Counter
    duration: Histogram
    draining: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ServerMetrics:
        return cls(
            in_flight=Gauge(
                "ecsgrpc_server_calls_in_flight",
                "Calls being served.",
                ["method"],
                registry=registry,
            ),
            calls=Counter(
                "ecsgrpc_server_calls_total",
                "Calls finished, by status code.",
                ["method", "code"],
                registry=registry,
            ),
            duration=Histogram(
                "ecsgrpc_server_call_duration_seconds",
                "Time to finish a call, by status code.",
                ["method", "code"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            draining=Gauge(
                "ecsgrpc_server_draining",
                "1 while the server drains after SIGTERM.",
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class ClientMetrics:
    """The balanced channel's instruments (the seed's three, named right, and more)."""

    in_flight: Gauge
    duration: BatchedHistogram
    failures: Counter
    retries: Counter
    endpoints: Gauge
    ejections: Counter
    stalls: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ClientMetrics:
        return cls(
            in_flight=Gauge(
                "ecsgrpc_client_calls_in_flight",
                "Calls (including streams) in flight.",
                ["target"],
                registry=registry,
            ),
            duration=BatchedHistogram(
                "ecsgrpc_client_call_duration_seconds",
                "Call duration, all attempts included.",
                ["method", "code"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            failures=Counter(
                "ecsgrpc_client_failures_total",
                "Failed calls, by reason.",
                ["method", "reason"],
                registry=registry,
            ),
            retries=Counter(
                "ecsgrpc_client_retries_total",
                "Attempts retried on another endpoint.",
                ["method"],
                registry=registry,
            ),
            endpoints=Gauge(
                "ecsgrpc_endpoints", "Endpoints by state.", ["target", "state"], registry=registry
            ),
            ejections=Counter(
                "ecsgrpc_endpoint_ejections_total",
                "Endpoints ejected by outlier detection.",
                ["target"],
                registry=registry,
            ),
            stalls=Counter(
                "ecsgrpc_endpoint_stalls_total",
                "Endpoints set aside for silence: owing answers while others answered.",
                ["target"],
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class ResolverMetrics:
    """Discovery instruments."""

    resolutions: Counter
    duration: Histogram
    endpoints: Gauge
    skipped: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ResolverMetrics:
        return cls(
            resolutions=Counter(
                "ecsgrpc_resolutions_total",
                "Resolutions, by outcome.",
                ["resolver", "outcome"],
                registry=registry,
            ),
            duration=Histogram(
                "ecsgrpc_resolution_duration_seconds",
                "Time to resolve a target.",
                ["resolver"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            endpoints=Gauge(
                "ecsgrpc_resolver_endpoints",
                "Endpoints in the last snapshot.",
                ["resolver", "target"],
                registry=registry,
            ),
            skipped=Counter(
                "ecsgrpc_resolver_skipped_records_total",
                "Malformed records or instances skipped, by reason.",
                ["resolver", "reason"],
                registry=registry,
            ),
        )


_T = TypeVar("_T", ServerMetrics, ClientMetrics, ResolverMetrics)
_cache: weakref.WeakKeyDictionary[CollectorRegistry, dict[type[object], object]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def _get(kind: type[_T], registry: CollectorRegistry | None) -> _T:
    reg = REGISTRY if registry is None else registry
    with _lock:
        families = _cache.setdefault(reg, {})
        found = families.get(kind)
        if found is None:
            found = families[kind] = kind.create(reg)
    assert isinstance(found, kind)
    return found


def server_metrics(registry: CollectorRegistry | None = None) -> ServerMetrics:
    return _get(ServerMetrics, registry)


def client_metrics(registry: CollectorRegistry | None = None) -> ClientMetrics:
    return _get(ClientMetrics, registry)


def resolver_metrics(registry: CollectorRegistry | None = None) -> ResolverMetrics:
    return _get(ResolverMetrics, registry)


@dataclass(frozen=True)
class GatewayMetrics:
    """The API Gateway's HTTP instruments (``ecsgrpc_gateway_*``)."""

    requests: Counter
    duration: Histogram
    in_flight: Gauge
    upstream_errors: Counter
    draining: Gauge
    restarts: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> GatewayMetrics:
        return cls(
            requests=Counter(
                "ecsgrpc_gateway_requests_total",
                "HTTP requests answered, by route template, method and status.",
                ["route", "method", "status"],
                registry=registry,
            ),
            duration=Histogram(
                "ecsgrpc_gateway_request_duration_seconds",
                "Time to answer an HTTP request (a stream: until its last event).",
                ["route", "method"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            in_flight=Gauge(
                "ecsgrpc_gateway_requests_in_flight",
                "HTTP requests (including open streams) being answered.",
                ["route"],
                registry=registry,
            ),
            upstream_errors=Counter(
                "ecsgrpc_gateway_upstream_errors_total",
                "Agent calls that failed, by gRPC code (before or during a stream).",
                ["code"],
                registry=registry,
            ),
            draining=Gauge(
                "ecsgrpc_gateway_draining",
                "1 while the gateway drains after SIGTERM.",
                registry=registry,
            ),
            restarts=Counter(
                "ecsgrpc_gateway_restarts_total",
                "Conversations restarted after their agent died mid-stream, by mode.",
                ["mode"],
                registry=registry,
            ),
        )


def gateway_metrics(registry: CollectorRegistry | None = None) -> GatewayMetrics:
    """The gateway's instruments on ``registry`` (the same ones on every call)."""
    reg = REGISTRY if registry is None else registry
    with _lock:
        families = _cache.setdefault(reg, {})
        found = families.get(GatewayMetrics)
        if found is None:
            found = families[GatewayMetrics] = GatewayMetrics.create(reg)
    assert isinstance(found, GatewayMetrics)
    return found


__all__ += ["GatewayMetrics", "gateway_metrics"]
