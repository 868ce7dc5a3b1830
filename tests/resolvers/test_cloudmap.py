"""cloudmap:// on the moto server: attributes, filters, watch changes, outages, bad data."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry

import ecsgrpc
from ecsgrpc.errors import ResolutionError
from ecsgrpc.resolvers import Backoff, build_resolver
from ecsgrpc_apps.local.emulator import AwsEmulator, CloudMapService
from tests.resolvers.helpers import hosts, metric, watching

pytestmark = pytest.mark.timeout(60)

POLL = 0.3
FAST = {"timeout": 2.0, "backoff": Backoff(initial=0.1, maximum=0.5)}
TARGET = "cloudmap://workflow.local/workflow-agent"


def ecs_attributes(ip: str, zone: str = "us-east-1a", **extra: str) -> dict[str, str]:
    """What ECS writes when it registers a task (awsvpc) in Cloud Map."""
    return {
        "AWS_INSTANCE_IPV4": ip,
        "AWS_INSTANCE_PORT": "50051",
        "AVAILABILITY_ZONE": zone,
        "ECS_CLUSTER_NAME": "workflow",
        "ECS_SERVICE_NAME": "workflow-agent",
        "ECS_TASK_DEFINITION_FAMILY": "workflow-agent",
        "REGION": "us-east-1",
        **extra,
    }


async def provision(aws: AwsEmulator) -> CloudMapService:
    return await asyncio.to_thread(aws.provision_cloudmap)


async def register(aws: AwsEmulator, svc: CloudMapService, iid: str, attrs: dict[str, str]) -> None:
    await asyncio.to_thread(aws.register_instance, svc, iid, attrs)


async def test_instances_become_endpoints_with_zone_health_and_raw_attributes(
    aws: AwsEmulator,
) -> None:
    svc = await provision(aws)
    await register(aws, svc, "task-1", ecs_attributes("10.0.1.10", weight="3"))
    await register(aws, svc, "task-2", ecs_attributes("10.0.2.20", "us-east-1b"))
    snapshot = await ecsgrpc.resolve(TARGET, **FAST)
    assert snapshot.source == "cloudmap"
    first, second = snapshot.endpoints
    assert (first.address, second.address) == ("10.0.1.10:50051", "10.0.2.20:50051")
    assert first.instance_id == "task-1"
    assert (first.zone, second.zone) == ("us-east-1a", "us-east-1b")
    assert first.attributes["health"] == "HEALTHY"
    assert first.weight == 3
    assert first.attributes["ECS_CLUSTER_NAME"] == "workflow"


async def test_attribute_filters_and_default_port(aws: AwsEmulator) -> None:
    svc = await provision(aws)
    await register(aws, svc, "blue", {"AWS_INSTANCE_IPV4": "10.0.0.1", "stage": "blue"})
    await register(aws, svc, "green", {"AWS_INSTANCE_IPV4": "10.0.0.2", "stage": "green"})
    snapshot = await ecsgrpc.resolve(f"{TARGET}?attr.stage=green&port=7000", **FAST)
    assert [ep.address for ep in snapshot] == ["10.0.0.2:7000"]


async def test_ipv6_only_instance(aws: AwsEmulator) -> None:
    svc = await provision(aws)
    await register(aws, svc, "v6", {"AWS_INSTANCE_IPV6": "fd00::5", "AWS_INSTANCE_PORT": "50051"})
    snapshot = await ecsgrpc.resolve(TARGET, **FAST)
    assert [ep.address for ep in snapshot] == ["[fd00::5]:50051"]


async def test_health_filters(aws: AwsEmulator) -> None:
    svc = await provision(aws)
    await register(aws, svc, "ok", ecs_attributes("10.0.0.1"))
    await register(aws, svc, "sick", ecs_attributes("10.0.0.2"))
    await asyncio.to_thread(aws.set_instance_health, svc, "sick", healthy=False)
    default = await ecsgrpc.resolve(TARGET, **FAST)
    everything = await ecsgrpc.resolve(f"{TARGET}?health=ALL", **FAST)
    assert hosts(default) == {"10.0.0.1"}
    assert hosts(everything) == {"10.0.0.1", "10.0.0.2"}
    assert {ep.instance_id: ep.attributes["health"] for ep in everything} == {
        "ok": "HEALTHY",
        "sick": "UNHEALTHY",
    }
    # HEALTHY_OR_ELSE_ALL (the default) falls back to all when none is healthy.
    await asyncio.to_thread(aws.set_instance_health, svc, "ok", healthy=False)
    assert hosts(await ecsgrpc.resolve(TARGET, **FAST)) == {"10.0.0.1", "10.0.0.2"}
    assert hosts(await ecsgrpc.resolve(f"{TARGET}?health=HEALTHY", **FAST)) == set()


async def test_malformed_instances_are_skipped_and_counted(aws: AwsEmulator) -> None:
    svc = await provision(aws)
    await register(aws, svc, "good", ecs_attributes("10.0.0.1"))
    await register(aws, svc, "no-ip", {"AWS_INSTANCE_PORT": "50051"})
    await register(aws, svc, "bad-ip", {"AWS_INSTANCE_IPV4": "10.0.0.300"})
    await register(
        aws, svc, "bad-port", {"AWS_INSTANCE_IPV4": "10.0.0.3", "AWS_INSTANCE_PORT": "http"}
    )
    await register(
        aws, svc, "big-port", {"AWS_INSTANCE_IPV4": "10.0.0.4", "AWS_INSTANCE_PORT": "70000"}
    )
    await register(aws, svc, "no-port", {"AWS_INSTANCE_IPV4": "10.0.0.5"})
    await register(aws, svc, "twin", ecs_attributes("10.0.0.1"))
    registry = CollectorRegistry()
    snapshot = await ecsgrpc.resolve(TARGET, registry=registry, **FAST)
    assert [ep.address for ep in snapshot] == ["10.0.0.1:50051"]
    skipped = {
        reason: metric(
            registry, "ecsgrpc_resolver_skipped_records_total", resolver="cloudmap", reason=reason
        )
        for reason in ("no_ip", "bad_ip", "bad_port", "no_port", "duplicate")
    }
    assert skipped == {"no_ip": 1, "bad_ip": 1, "bad_port": 2, "no_port": 1, "duplicate": 1}


async def test_registration_deregistration_and_health_within_one_poll(aws: AwsEmulator) -> None:
    svc = await provision(aws)
    await register(aws, svc, "task-1", ecs_attributes("10.0.0.1"))
    resolver = build_resolver(f"{TARGET}?poll={POLL}", **FAST)
    async with watching(resolver) as watcher:
        await watcher.wait_for(lambda s: hosts(s) == {"10.0.0.1"}, 5)
        bound = POLL + 0.5  # one poll interval, plus the API call and scheduling

        await register(aws, svc, "task-2", ecs_attributes("10.0.0.2"))
        assert await watcher.wait_for(lambda s: hosts(s) == {"10.0.0.1", "10.0.0.2"}, 5) < bound

        await asyncio.to_thread(aws.set_instance_health, svc, "task-1", healthy=False)
        assert await watcher.wait_for(lambda s: hosts(s) == {"10.0.0.2"}, 5) < bound

        await asyncio.to_thread(aws.deregister_instance, svc, "task-2")
        # No healthy instance left: HEALTHY_OR_ELSE_ALL answers the unhealthy one.
        took = await watcher.wait_for(
            lambda s: [(e.host, e.attributes["health"]) for e in s] == [("10.0.0.1", "UNHEALTHY")],
            5,
        )
        assert took < bound
        await asyncio.to_thread(aws.deregister_instance, svc, "task-1")
        assert await watcher.wait_for(lambda s: len(s) == 0, 5) < bound  # a real empty answer
    assert len(watcher.snapshots) == 5


async def test_attribute_change_alone_is_a_change(aws: AwsEmulator) -> None:
    svc = await provision(aws)
    await register(aws, svc, "task-1", ecs_attributes("10.0.0.1"))
    resolver = build_resolver(f"{TARGET}?poll={POLL}&health=ALL", **FAST)
    async with watching(resolver) as watcher:
        await watcher.wait_for(lambda s: len(s) == 1, 5)
        await asyncio.to_thread(aws.set_instance_health, svc, "task-1", healthy=False)
        await watcher.wait_for(lambda s: s.endpoints[0].attributes["health"] == "UNHEALTHY", 5)
    old, new = watcher.snapshots
    assert old.addresses == new.addresses
    assert old.diff(new) == ([], [], [new.endpoints[0]])


async def test_api_outage_keeps_last_known_good_and_recovers(aws: AwsEmulator) -> None:
    svc = await provision(aws)
    await register(aws, svc, "task-1", ecs_attributes("10.0.0.1"))
    await register(aws, svc, "task-2", ecs_attributes("10.0.0.2"))
    registry = CollectorRegistry()
    resolver = build_resolver(f"{TARGET}?poll={POLL}", registry=registry, **FAST)
    async with watching(resolver) as watcher:
        await watcher.wait_for(lambda s: len(s) == 2, 5)
        await asyncio.to_thread(aws.stop)
        errors = "ecsgrpc_resolutions_total"
        deadline = time.monotonic() + 15
        while metric(registry, errors, resolver="cloudmap", outcome="error") < 2:
            assert time.monotonic() < deadline, "no failed resolutions counted"
            await asyncio.sleep(0.1)
        assert len(watcher.snapshots) == 1
        with pytest.raises(ResolutionError):
            await resolver.resolve()
        await asyncio.to_thread(aws.start)
        await register(aws, svc, "task-3", ecs_attributes("10.0.0.3"))
        await watcher.wait_for(lambda s: len(s) == 3, 10)
    assert [len(s) for s in watcher.snapshots] == [2, 3]


async def test_service_endpoint_override_variable(
    aws: AwsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = await provision(aws)
    await register(aws, svc, "task-1", ecs_attributes("10.0.0.1"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL_SERVICEDISCOVERY", aws.endpoint_url)
    snapshot = await ecsgrpc.resolve(TARGET, **FAST)
    assert [ep.instance_id for ep in snapshot] == ["task-1"]


async def test_unknown_namespace_is_a_resolution_error(aws: AwsEmulator) -> None:
    await provision(aws)
    with pytest.raises(ResolutionError, match="NamespaceNotFound"):
        await ecsgrpc.resolve("cloudmap://nope.local/workflow-agent", **FAST)


async def test_chain_falls_back_and_says_which_source(aws: AwsEmulator) -> None:
    svc = await provision(aws)
    await register(aws, svc, "task-1", ecs_attributes("10.0.0.1"))
    chain = f"{TARGET}?poll={POLL}|static:///127.0.0.9:50051"
    registry = CollectorRegistry()
    resolver = build_resolver(chain, registry=registry, **FAST)
    async with watching(resolver) as watcher:
        await watcher.wait_for(lambda s: s.source == "cloudmap", 5)
        await asyncio.to_thread(aws.stop)
        await watcher.wait_for(lambda s: s.source == "static", 10)
        await asyncio.to_thread(aws.start)
        await watcher.wait_for(lambda s: s.source == "cloudmap", 10)
    assert [(s.source, [e.host for e in s]) for s in watcher.snapshots] == [
        ("cloudmap", ["10.0.0.1"]),
        ("static", ["127.0.0.9"]),
        ("cloudmap", ["10.0.0.1"]),
    ]
    assert metric(registry, "ecsgrpc_resolutions_total", resolver="cloudmap", outcome="error") >= 1


async def test_everything_failing_in_a_chain_names_each_link(aws: AwsEmulator) -> None:
    await asyncio.to_thread(aws.stop)
    with pytest.raises(ResolutionError, match=r"every link failed: cloudmap: .*; dns: "):
        await ecsgrpc.resolve(f"{TARGET}|dns://127.0.0.1:9/agent.test:1", timeout=0.5)
