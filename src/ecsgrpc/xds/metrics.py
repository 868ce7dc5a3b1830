"""Prometheus instruments of the control plane (``ecsgrpc_xds_*``)."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

__all__ = ["XdsMetrics", "xds_metrics"]


@dataclass(frozen=True)
class XdsMetrics:
    streams: Gauge  # open ADS streams (subscribed clients)
    responses: Counter  # type
    requests: Counter  # type, outcome: subscribe, ack, nack, stale
    endpoints: Gauge  # service, health

    @classmethod
    def create(cls, registry: CollectorRegistry) -> XdsMetrics:
        return cls(
            streams=Gauge(
                "ecsgrpc_xds_streams", "Open ADS streams (one per client)", registry=registry
            ),
            responses=Counter(
                "ecsgrpc_xds_responses",
                "Discovery responses sent, by resource type",
                ["type"],
                registry=registry,
            ),
            requests=Counter(
                "ecsgrpc_xds_requests",
                "Discovery requests, by resource type and outcome (subscribe, ack, nack, stale)",
                ["type", "outcome"],
                registry=registry,
            ),
            endpoints=Gauge(
                "ecsgrpc_xds_endpoints",
                "Endpoints published, by service and health status",
                ["service", "health"],
                registry=registry,
            ),
        )


_lock = threading.Lock()
_cache: weakref.WeakKeyDictionary[CollectorRegistry, XdsMetrics] = weakref.WeakKeyDictionary()


def xds_metrics(registry: CollectorRegistry | None = None) -> XdsMetrics:
    """The instruments on ``registry`` (default: the global one), created once."""
    target = registry if registry is not None else REGISTRY
    with _lock:
        found = _cache.get(target)
        if found is None:
            found = _cache[target] = XdsMetrics.create(target)
        return found
