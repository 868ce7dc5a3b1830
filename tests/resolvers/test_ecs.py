"""ecs:// against the moto server: RUNNING tasks' ENI addresses, changes, outages, batching."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry

import ecsgrpc
from ecsgrpc.resolvers import Backoff, build_resolver
from ecsgrpc.resolvers.ecs import endpoints_from_tasks
from ecsgrpc_apps.local.emulator import AwsEmulator
from tests.resolvers.helpers import metric, watching
from tests.support.aws import EcsService, provision_ecs, run_tasks, stop_task

pytestmark = pytest.mark.timeout(90)

POLL = 0.3
FAST = {"timeout": 2.0, "backoff": Backoff(initial=0.1, maximum=0.5)}


def eni_ip(task: dict[str, object]) -> str:
    for attachment in task["attachments"]:  # type: ignore[attr-defined]
        for detail in attachment["details"]:
            if detail["name"] == "privateIPv4Address":
                return str(detail["value"])
    raise AssertionError("task without ENI address")


async def setup(aws: AwsEmulator) -> EcsService:
    return await asyncio.to_thread(provision_ecs, aws)


async def start(
    aws: AwsEmulator, spec: EcsService, count: int, **kw: str
) -> list[dict[str, object]]:
    return await asyncio.to_thread(run_tasks, aws, spec, count, **kw)


async def test_running_tasks_become_endpoints(aws: AwsEmulator) -> None:
    spec = await setup(aws)
    tasks = await start(aws, spec, 2)
    await start(aws, spec, 1, service="other")  # another service's task is not ours
    snapshot = await ecsgrpc.resolve("ecs://workflow/agent?port=50051", **FAST)
    assert snapshot.source == "ecs"
    assert {ep.host for ep in snapshot} == {eni_ip(t) for t in tasks}
    assert {ep.port for ep in snapshot} == {50051}
    assert {ep.instance_id for ep in snapshot} == {
        str(t["taskArn"]).rsplit("/", 1)[-1] for t in tasks
    }
    assert all(ep.attributes["task_arn"].startswith("arn:aws:ecs:") for ep in snapshot)


async def test_more_than_one_describe_batch(aws: AwsEmulator) -> None:
    spec = await setup(aws)
    for _ in range(13):  # run_task starts at most 10 tasks per call
        await start(aws, spec, 10)
    snapshot = await ecsgrpc.resolve("ecs://workflow/agent?port=50051", **FAST)
    assert len(snapshot) == 130  # 100 + 30: two DescribeTasks batches


async def test_task_start_and_stop_seen_within_one_poll(aws: AwsEmulator) -> None:
    spec = await setup(aws)
    first = await start(aws, spec, 1)
    resolver = build_resolver(f"ecs://workflow/agent?port=50051&poll={POLL}", **FAST)
    bound = POLL + 1.0  # one poll, plus ListTasks + DescribeTasks on a loaded emulator
    async with watching(resolver) as watcher:
        await watcher.wait_for(lambda s: len(s) == 1, 5)
        second = await start(aws, spec, 1)
        assert await watcher.wait_for(lambda s: len(s) == 2, 5) < bound
        await asyncio.to_thread(stop_task, aws, spec, str(first[0]["taskArn"]))
        took = await watcher.wait_for(lambda s: [e.host for e in s] == [eni_ip(second[0])], 5)
        assert took < bound


async def test_api_outage_keeps_last_known_good(aws: AwsEmulator) -> None:
    spec = await setup(aws)
    await start(aws, spec, 2)
    registry = CollectorRegistry()
    resolver = build_resolver(
        f"ecs://workflow/agent?port=50051&poll={POLL}", registry=registry, **FAST
    )
    async with watching(resolver) as watcher:
        await watcher.wait_for(lambda s: len(s) == 2, 5)
        await asyncio.to_thread(aws.stop)
        deadline = time.monotonic() + 15
        while metric(registry, "ecsgrpc_resolutions_total", resolver="ecs", outcome="error") < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert len(watcher.snapshots) == 1
        await asyncio.to_thread(aws.start)
        await start(aws, spec, 1)
        await watcher.wait_for(lambda s: len(s) == 3, 10)


def test_describe_tasks_payload_mapping() -> None:
    """Fields real ECS returns (moto leaves out availabilityZone and healthStatus)."""
    skipped: list[tuple[str, str]] = []
    task = {
        "taskArn": "arn:aws:ecs:us-east-1:1:task/workflow/abc",
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:1:task-definition/agent:3",
        "lastStatus": "RUNNING",
        "group": "service:agent",
        "availabilityZone": "us-east-1b",
        "healthStatus": "HEALTHY",
        "attachments": [
            {
                "type": "ElasticNetworkInterface",
                "details": [{"name": "privateIPv4Address", "value": "10.0.2.7"}],
            }
        ],
    }
    no_eni = {**task, "taskArn": "arn:aws:ecs:us-east-1:1:task/workflow/noeni", "attachments": []}
    pending = {**task, "lastStatus": "PENDING"}
    endpoints = endpoints_from_tasks(
        [task, no_eni, pending, task, "junk"],
        port=50051,
        service="agent",
        skip=lambda r, d: skipped.append((r, d)),
    )
    assert [(e.address, e.zone, e.attributes["health"], e.instance_id) for e in endpoints] == [
        ("10.0.2.7:50051", "us-east-1b", "HEALTHY", "abc")
    ]
    assert [r for r, _ in skipped] == ["no_ip", "malformed", "duplicate"]
