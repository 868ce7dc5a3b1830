"""The resources the control plane builds, checked field by field against what
gRPC's xDS clients read (gRFC A27, A31, A42, A44, A50), plus health publishing."""

from __future__ import annotations

import pytest
from envoy.config.core.v3 import health_check_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from ecsgrpc.endpoints import Endpoint, EndpointSet
from ecsgrpc.errors import ConfigError
from ecsgrpc.xds.catalog import publish_health
from ecsgrpc.xds.config import OutlierPolicy, RetryPolicy, XdsService, parse_service
from ecsgrpc.xds.probes import ProbeStatus
from ecsgrpc.xds.resources import (
    EndpointHealth,
    EndpointView,
    cluster,
    listener,
    load_assignment,
    pack,
    region_of,
    route_configuration,
    version_of,
)

SVC = XdsService("workflow-agent", "static:///127.0.17.2:50051")
H, D, U, K = (
    EndpointHealth.HEALTHY,
    EndpointHealth.DRAINING,
    EndpointHealth.UNHEALTHY,
    EndpointHealth.UNKNOWN,
)


def test_listener_is_an_api_listener_naming_the_route_by_rds_with_the_router_last() -> None:
    lis = listener(SVC)
    assert lis.name == "workflow-agent"
    manager = hcm_pb2.HttpConnectionManager()
    assert lis.api_listener.api_listener.Unpack(manager)
    assert manager.rds.route_config_name == "workflow-agent"
    assert manager.rds.config_source.HasField("ads")
    assert manager.http_filters[-1].typed_config.type_url.endswith(
        "envoy.extensions.filters.http.router.v3.Router"
    )


def test_inline_routes_put_the_route_configuration_in_the_listener() -> None:
    manager = hcm_pb2.HttpConnectionManager()
    listener(XdsService("a", "static:///127.0.17.2:1", rds=False)).api_listener.api_listener.Unpack(
        manager
    )
    assert not manager.HasField("rds")
    assert manager.route_config.virtual_hosts[0].routes[0].route.cluster == "a"


def test_route_carries_retry_policy_a44_and_max_duration_a31() -> None:
    svc = XdsService(
        "a",
        "static:///127.0.17.2:1",
        retry=RetryPolicy(retry_on=("unavailable", "resource-exhausted"), num_retries=3),
        timeout=2.5,
    )
    host = route_configuration(svc).virtual_hosts[0]
    assert list(host.domains) == ["*"]
    route = host.routes[0]
    assert route.match.prefix == ""
    assert route.route.retry_policy.retry_on == "unavailable,resource-exhausted"
    assert route.route.retry_policy.num_retries.value == 3
    assert route.route.retry_policy.retry_back_off.base_interval.ToMilliseconds() == 25
    assert route.route.max_stream_duration.max_stream_duration.ToMilliseconds() == 2500
    no_retry = route_configuration(XdsService("a", "static:///127.0.17.2:1", retry=None))
    assert not no_retry.virtual_hosts[0].routes[0].route.HasField("retry_policy")


def test_cluster_is_eds_over_ads_with_failure_percentage_outlier_detection_a50() -> None:
    c = cluster(SVC)
    assert c.type == c.EDS
    assert c.eds_cluster_config.eds_config.HasField("ads")
    assert c.eds_cluster_config.service_name == "workflow-agent"
    assert c.lb_policy == c.ROUND_ROBIN
    od = c.outlier_detection
    assert od.enforcing_success_rate.value == 0
    assert od.enforcing_failure_percentage.value == 100
    assert od.failure_percentage_threshold.value == OutlierPolicy().threshold
    assert cluster(XdsService("a", "static:///127.0.17.2:1", lb_policy="ring_hash")).lb_policy == (
        c.RING_HASH
    )
    assert not cluster(XdsService("a", "static:///127.0.17.2:1", outlier=None)).HasField(
        "outlier_detection"
    )


def _views() -> list[EndpointView]:
    return [
        EndpointView("10.0.1.1", 50051, "us-east-1a", H),
        EndpointView("10.0.1.2", 50051, "us-east-1a", D),
        EndpointView("10.0.2.1", 50051, "us-east-1b", K),
        EndpointView("10.0.3.1", 50051, "us-east-1c", U),
    ]


def test_localities_are_zones_weighted_by_usable_endpoints_with_health_statuses() -> None:
    cla = load_assignment("w", _views())
    assert cla.cluster_name == "w"
    by_zone = {loc.locality.zone: loc for loc in cla.endpoints}
    assert set(by_zone) == {"us-east-1a", "us-east-1b", "us-east-1c"}
    assert by_zone["us-east-1a"].locality.region == "us-east-1"
    assert by_zone["us-east-1a"].load_balancing_weight.value == 1  # the DRAINING one not counted
    statuses = {
        e.endpoint.address.socket_address.address: e.health_status
        for loc in cla.endpoints
        for e in loc.lb_endpoints
    }
    assert statuses == {
        "10.0.1.1": health_check_pb2.HEALTHY,
        "10.0.1.2": health_check_pb2.DRAINING,
        "10.0.2.1": health_check_pb2.UNKNOWN,
        "10.0.3.1": health_check_pb2.UNHEALTHY,
    }
    assert {loc.priority for loc in cla.endpoints} == {0}


def test_a_client_gets_its_own_zone_at_priority_0_and_the_rest_at_1() -> None:
    cla = load_assignment("w", _views(), client_zone="us-east-1b")
    assert {loc.locality.zone: loc.priority for loc in cla.endpoints} == {
        "us-east-1a": 1,
        "us-east-1b": 0,
        "us-east-1c": 1,
    }


def test_no_usable_endpoint_in_the_clients_zone_means_no_preference() -> None:
    only_bad_local = load_assignment("w", _views(), client_zone="us-east-1c")
    assert {loc.priority for loc in only_bad_local.endpoints} == {0}
    unknown_zone = load_assignment("w", _views(), client_zone="eu-west-1a")
    assert {loc.priority for loc in unknown_zone.endpoints} == {0}


views_strategy = st.lists(
    st.builds(
        EndpointView,
        host=st.sampled_from([f"10.0.0.{i}" for i in range(1, 30)]),
        port=st.integers(1, 65535),
        zone=st.sampled_from(["", "us-east-1a", "us-east-1b", "use1-az4"]),
        health=st.sampled_from(list(EndpointHealth)),
        weight=st.integers(1, 1000),
    ),
    max_size=40,
    unique_by=lambda v: (v.host, v.port),
)


@settings(deadline=None)
@given(views_strategy, st.sampled_from([None, "", "us-east-1a", "us-east-1b", "use1-az4"]))
def test_every_endpoint_is_published_once_with_contiguous_priorities(
    views: list[EndpointView], zone: str | None
) -> None:
    cla = load_assignment("w", views, client_zone=zone)
    published = [
        (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
        for loc in cla.endpoints
        for e in loc.lb_endpoints
    ]
    assert sorted(published) == sorted((v.host, v.port) for v in views)
    priorities = sorted({loc.priority for loc in cla.endpoints})
    assert priorities == list(range(len(priorities)))  # gRPC needs 0..N-1
    assert all(loc.load_balancing_weight.value >= 1 for loc in cla.endpoints)
    # Same input, same bytes: versions are stable.
    assert version_of([pack(cla)]) == version_of([pack(load_assignment("w", views, zone))])


def test_region_of_zone_names_and_zone_ids() -> None:
    assert region_of("us-east-1a") == "us-east-1"
    assert region_of("ap-southeast-2c") == "ap-southeast-2"
    assert region_of("use1-az1") == ""
    assert region_of("") == ""


def _set(*eps: Endpoint) -> EndpointSet:
    return EndpointSet.of(eps, source="test")


def test_health_published_from_discovery_and_the_health_watch() -> None:
    a = Endpoint("10.0.0.1", 1, {"health": "HEALTHY", "availability_zone": "us-east-1a"})
    b = Endpoint("10.0.0.2", 1, {"health": "UNHEALTHY"})
    c = Endpoint("10.0.0.3", 1, {})
    views = publish_health(
        _set(a, b, c), {"10.0.0.1:1": ProbeStatus.NOT_SERVING, "10.0.0.2:1": ProbeStatus.SERVING}
    )
    assert [(v.host, v.zone, v.health) for v in views] == [
        ("10.0.0.1", "us-east-1a", D),  # NOT_SERVING wins: it is draining
        ("10.0.0.2", "", U),  # discovery's UNHEALTHY is kept
        ("10.0.0.3", "", K),
    ]
    serving = publish_health(_set(c), {"10.0.0.3:1": ProbeStatus.SERVING})
    assert serving[0].health is H


def test_all_unhealthy_is_published_unknown_like_cloud_maps_healthy_or_else_all() -> None:
    eps = [Endpoint(f"10.0.0.{i}", 1, {"health": "UNHEALTHY"}) for i in (1, 2)]
    assert {v.health for v in publish_health(_set(*eps), {})} == {K}
    drained = publish_health(_set(*eps), {"10.0.0.1:1": ProbeStatus.NOT_SERVING})
    assert [v.health for v in drained] == [D, U]


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: XdsService("bad name", "static:///127.0.17.2:1"), "'bad name'"),
        (lambda: XdsService("a", "nope://x"), "nope://x"),
        (lambda: XdsService("a", "static:///127.0.17.2:1", lb_policy="random"), "'random'"),
        (lambda: XdsService("a", "static:///127.0.17.2:1", timeout=0), "got 0"),
        (lambda: RetryPolicy(retry_on=("5xx",)), "'5xx'"),
        (lambda: RetryPolicy(num_retries=9), "got 9"),
        (lambda: OutlierPolicy(threshold=150), "got 150"),
        (lambda: parse_service("no-equals-sign"), "'no-equals-sign'"),
    ],
)
def test_bad_configuration_is_a_config_error_naming_the_value(build, named) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        build()
    assert named in str(info.value)
