"""Pure builders of the four xDS resources gRPC clients ask for (gRFC A27).

For a service ``NAME`` (see :class:`~ecsgrpc.xds.config.XdsService`):

* **Listener** ``NAME``: an API listener whose HttpConnectionManager names the
  route configuration (RDS) or carries it inline, and ends with the router
  filter (gRPC requires it last);
* **RouteConfiguration** ``NAME``: one virtual host (``*``) with one route
  (prefix ``""``) to cluster ``NAME``, its retry policy (gRFC A44) and maximum
  call duration (gRFC A31);
* **Cluster** ``NAME``: type EDS over ADS, the load-balancing policy and
  outlier detection (gRFC A50, failure-percentage);
* **ClusterLoadAssignment** ``NAME``: endpoints grouped by locality (the
  availability zone), each with its health status, and, for a client that
  names its zone, its own zone at priority 0 and the rest at priority 1.

Nothing here does I/O; the same inputs always give the same bytes, so a
response's version can be a hash of its resources.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import api_listener_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2

from ecsgrpc.endpoints import ATTR_HEALTH, Endpoint
from ecsgrpc.xds.config import XdsService

__all__ = [
    "CLUSTER",
    "ENDPOINT",
    "LISTENER",
    "ROUTE",
    "TYPE_URLS",
    "EndpointHealth",
    "EndpointView",
    "cluster",
    "listener",
    "load_assignment",
    "pack",
    "region_of",
    "route_configuration",
    "source_health",
    "version_of",
]

_PREFIX = "type.googleapis.com/"
LISTENER = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
CLUSTER = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
TYPE_URLS = (LISTENER, ROUTE, CLUSTER, ENDPOINT)
_HCM = _PREFIX + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = _PREFIX + "envoy.extensions.filters.http.router.v3.Router"


class EndpointHealth(enum.Enum):
    """An endpoint's xDS health status. gRPC sends new calls only to HEALTHY and
    UNKNOWN endpoints; DRAINING and UNHEALTHY ones get none (gRFC A42)."""

    UNKNOWN = health_check_pb2.UNKNOWN
    HEALTHY = health_check_pb2.HEALTHY
    UNHEALTHY = health_check_pb2.UNHEALTHY
    DRAINING = health_check_pb2.DRAINING

    @property
    def usable(self) -> bool:
        return self in (EndpointHealth.UNKNOWN, EndpointHealth.HEALTHY)


def source_health(endpoint: Endpoint) -> EndpointHealth:
    """What discovery says: Cloud Map's ``HealthStatus`` or the ECS task's
    ``healthStatus`` (``HEALTHY``/``UNHEALTHY``/``UNKNOWN``); absent: UNKNOWN."""
    raw = endpoint.attributes.get(ATTR_HEALTH, "").upper()
    if raw == "HEALTHY":
        return EndpointHealth.HEALTHY
    if raw == "UNHEALTHY":
        return EndpointHealth.UNHEALTHY
    return EndpointHealth.UNKNOWN


@dataclass(frozen=True, slots=True)
class EndpointView:
    """An endpoint as the control plane publishes it: where, which zone, how healthy."""

    host: str
    port: int
    zone: str
    health: EndpointHealth
    weight: int = 1


def pack(message: Any) -> any_pb2.Any:
    """``message`` in an Any, serialized deterministically (same content, same bytes)."""
    return any_pb2.Any(
        type_url=_PREFIX + message.DESCRIPTOR.full_name,
        value=message.SerializeToString(deterministic=True),
    )


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def _u32(value: int) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=value)


def _ads() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )


def listener(service: XdsService) -> listener_pb2.Listener:
    """The API listener a client looks up for ``xds:///NAME``."""
    manager = hcm_pb2.HttpConnectionManager(
        http_filters=[hcm_pb2.HttpFilter(name="router", typed_config=pack(router_pb2.Router()))]
    )
    if service.rds:
        manager.rds.CopyFrom(hcm_pb2.Rds(config_source=_ads(), route_config_name=service.name))
    else:
        manager.route_config.CopyFrom(route_configuration(service))
    return listener_pb2.Listener(
        name=service.name,
        api_listener=api_listener_pb2.ApiListener(api_listener=pack(manager)),
    )


def route_configuration(service: XdsService) -> route_pb2.RouteConfiguration:
    """Every call to NAME goes to cluster NAME, with retries and a maximum duration."""
    action = route_components_pb2.RouteAction(cluster=service.name)
    if service.retry is not None:
        retry = service.retry
        action.retry_policy.CopyFrom(
            route_components_pb2.RetryPolicy(
                retry_on=",".join(retry.retry_on),
                num_retries=_u32(retry.num_retries),
                retry_back_off=route_components_pb2.RetryPolicy.RetryBackOff(
                    base_interval=_duration(retry.base_interval),
                    max_interval=_duration(retry.max_interval),
                ),
            )
        )
    if service.timeout is not None:
        action.max_stream_duration.max_stream_duration.CopyFrom(_duration(service.timeout))
    route = route_components_pb2.Route(
        match=route_components_pb2.RouteMatch(prefix=""), route=action
    )
    host = route_components_pb2.VirtualHost(name=service.name, domains=["*"], routes=[route])
    return route_pb2.RouteConfiguration(name=service.name, virtual_hosts=[host])


def cluster(service: XdsService) -> cluster_pb2.Cluster:
    """An EDS cluster (endpoints by ADS) with the policy and outlier detection."""
    result = cluster_pb2.Cluster(
        name=service.name,
        type=cluster_pb2.Cluster.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(
            eds_config=_ads(), service_name=service.name
        ),
        lb_policy=(
            cluster_pb2.Cluster.RING_HASH
            if service.lb_policy == "ring_hash"
            else cluster_pb2.Cluster.ROUND_ROBIN
        ),
    )
    outlier = service.outlier
    if outlier is not None:
        result.outlier_detection.CopyFrom(
            outlier_detection_pb2.OutlierDetection(
                interval=_duration(outlier.interval),
                base_ejection_time=_duration(outlier.base_ejection),
                max_ejection_time=_duration(outlier.max_ejection),
                max_ejection_percent=_u32(outlier.max_ejection_percent),
                # gRPC implements success-rate and failure-percentage only (A50);
                # success rate is off, failure percentage enforced.
                enforcing_success_rate=_u32(0),
                failure_percentage_threshold=_u32(outlier.threshold),
                enforcing_failure_percentage=_u32(100),
                failure_percentage_minimum_hosts=_u32(outlier.minimum_hosts),
                failure_percentage_request_volume=_u32(outlier.request_volume),
            )
        )
    return result


def region_of(zone: str) -> str:
    """``us-east-1a`` -> ``us-east-1``; a zone id (``use1-az1``) or "" -> ""."""
    match = re.fullmatch(r"([a-z]{2}(?:-[a-z]+)+-\d+)[a-z]", zone)
    return match.group(1) if match else ""


def load_assignment(
    name: str, endpoints: Sequence[EndpointView], client_zone: str | None = None
) -> endpoint_pb2.ClusterLoadAssignment:
    """Endpoints grouped by zone (one locality each, weighted by its usable
    endpoints). With ``client_zone`` set and at least one usable endpoint in
    it, that zone is priority 0 and the others priority 1; otherwise all are 0.
    gRPC moves to priority 1 only when priority 0 cannot serve (A27)."""
    by_zone: dict[str, list[EndpointView]] = {}
    for ep in sorted(endpoints, key=lambda e: (e.zone, e.host, e.port)):
        by_zone.setdefault(ep.zone, []).append(ep)
    local = bool(client_zone) and any(ep.health.usable for ep in by_zone.get(client_zone or "", ()))
    localities = []
    for zone, members in by_zone.items():
        usable = sum(ep.weight for ep in members if ep.health.usable)
        localities.append(
            endpoint_components_pb2.LocalityLbEndpoints(
                locality=base_pb2.Locality(region=region_of(zone), zone=zone),
                lb_endpoints=[_lb_endpoint(ep) for ep in members],
                load_balancing_weight=_u32(max(1, usable)),
                priority=0 if not local or zone == client_zone else 1,
            )
        )
    return endpoint_pb2.ClusterLoadAssignment(cluster_name=name, endpoints=localities)


def _lb_endpoint(ep: EndpointView) -> endpoint_components_pb2.LbEndpoint:
    address = address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=ep.host, port_value=ep.port)
    )
    return endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=address),
        health_status=ep.health.value,
        load_balancing_weight=_u32(ep.weight),
    )


def version_of(resources: Iterable[any_pb2.Any]) -> str:
    """A short, stable hash of packed resources: equal content, equal version."""
    digest = hashlib.sha256()
    for resource in resources:
        digest.update(resource.type_url.encode())
        digest.update(resource.value)
    return digest.hexdigest()[:16]
