"""Record parsing properties: any Cloud Map/SRV/ECS data gives endpoints or skips, no crash."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecsgrpc.resolvers.cloudmap import endpoints_from_instances
from ecsgrpc.resolvers.dnsquery import AddressAnswer
from ecsgrpc.resolvers.ecs import endpoints_from_tasks
from ecsgrpc.resolvers.srv import endpoints_from_srv

pytestmark = pytest.mark.timeout(60)

_ips = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(["", "10.0.0.300", "localhost", "::1::", " 10.0.0.1 ", "010.0.0.1"]),
    st.text(max_size=12),
)
_ports = st.one_of(
    st.integers(-5, 70000).map(str),
    st.sampled_from(["", "http", "50051 ", "0x10", "²"]),
    st.text(max_size=6),
)
_attributes = st.fixed_dictionaries(
    {},
    optional={
        "AWS_INSTANCE_IPV4": _ips,
        "AWS_INSTANCE_IPV6": _ips,
        "AWS_INSTANCE_PORT": _ports,
        "AVAILABILITY_ZONE": st.sampled_from(["us-east-1a", "us-east-1b", ""]),
        "weight": st.text(max_size=5),
        "health": st.text(max_size=5),
    },
)
_instance: st.SearchStrategy[Any] = st.one_of(
    st.fixed_dictionaries(
        {"InstanceId": st.text(max_size=8), "Attributes": _attributes},
        optional={"HealthStatus": st.sampled_from(["HEALTHY", "UNHEALTHY", "UNKNOWN"])},
    ),
    st.fixed_dictionaries(
        {}, optional={"Attributes": st.one_of(st.none(), st.integers(), st.lists(st.text()))}
    ),
    st.none(),
    st.integers(),
    st.text(max_size=5),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_instance, max_size=12), st.one_of(st.none(), st.integers(1, 65535)))
def test_any_discover_instances_answer_gives_valid_endpoints(
    instances: list[Any], default_port: int | None
) -> None:
    skipped: list[str] = []
    endpoints = endpoints_from_instances(
        instances, default_port=default_port, skip=lambda r, d: skipped.append(r)
    )
    for ep in endpoints:
        ipaddress.ip_address(ep.host)
        assert 1 <= ep.port <= 65535
        assert "instance_id" in ep.attributes
    assert len({ep.address for ep in endpoints}) == len(endpoints)
    # Each instance is either used or skipped exactly once.
    assert len(endpoints) + len(skipped) == len(instances)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 65535),
            st.integers(0, 65535),
            st.integers(0, 65535),
            st.sampled_from(["a.test", "b.test", "gone.test", ".", ""]),
        ),
        max_size=10,
    )
)
def test_any_srv_answer_gives_valid_endpoints(records: list[tuple[int, int, int, str]]) -> None:
    addresses = {
        "a.test": AddressAnswer(("127.0.0.2", "::1"), 5.0),
        "b.test": AddressAnswer((), None),
        "gone.test": None,
    }
    skipped: list[str] = []
    endpoints = endpoints_from_srv(records, addresses, lambda r, d: skipped.append(r))
    assert all(ep.host in ("127.0.0.2", "::1") and 1 <= ep.port <= 65535 for ep in endpoints)
    assert len({ep.address for ep in endpoints}) == len(endpoints)
    usable = {(p, t) for _, _, p, t in records if t == "a.test" and 1 <= p <= 65535}
    assert {(ep.port, "a.test") for ep in endpoints} == usable


_task: st.SearchStrategy[Any] = st.fixed_dictionaries(
    {
        "taskArn": st.sampled_from(["arn:aws:ecs:r:1:task/c/a", "arn:aws:ecs:r:1:task/c/b", "x"]),
        "lastStatus": st.sampled_from(["RUNNING", "PENDING", "STOPPED"]),
    },
    optional={
        "group": st.sampled_from(["service:agent", "service:other", "family:agent"]),
        "availabilityZone": st.sampled_from(["us-east-1a", ""]),
        "attachments": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["ElasticNetworkInterface", "Other"])},
                optional={
                    "details": st.lists(
                        st.fixed_dictionaries(
                            {
                                "name": st.sampled_from(["privateIPv4Address", "subnetId"]),
                                "value": _ips,
                            }
                        ),
                        max_size=3,
                    )
                },
            ),
            max_size=2,
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_task, st.none(), st.integers()), max_size=8))
def test_any_describe_tasks_answer_gives_valid_endpoints(tasks: list[Any]) -> None:
    endpoints = endpoints_from_tasks(tasks, port=50051, service="agent", skip=lambda r, d: None)
    for ep in endpoints:
        assert isinstance(ipaddress.ip_address(ep.host), ipaddress.IPv4Address)
        assert ep.port == 50051
    assert len({ep.address for ep in endpoints}) == len(endpoints)
