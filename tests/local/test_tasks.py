"""The ECS-like task runner with the real emulator and real agent processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable

import pytest
from grpc_health.v1 import health_pb2
from moto.core import DEFAULT_ACCOUNT_ID
from moto.servicediscovery.models import servicediscovery_backends

from ecsgrpc_apps.local.emulator import REGION
from ecsgrpc_apps.local.states import TaskState
from ecsgrpc_apps.local.task import TaskEvent, TaskEventKind
from ecsgrpc_apps.local.tasks import Task, TaskRunner, TaskStartError
from tests.local.conftest import CloudMap, fast_definition
from tests.support.agents import health_status, wait_until

ECS_ATTRIBUTES = {
    "AWS_INSTANCE_IPV4",
    "AWS_INSTANCE_PORT",
    "AVAILABILITY_ZONE",
    "AWS_INIT_HEALTH_STATUS",
    "ECS_CLUSTER_NAME",
    "ECS_SERVICE_NAME",
    "ECS_TASK_DEFINITION_FAMILY",
    "REGION",
}


def registered_ids(runner: TaskRunner) -> set[str]:
    """Instance ids in moto's in-process backend, read without I/O (for sync listeners)."""
    backend = servicediscovery_backends[DEFAULT_ACCOUNT_ID][REGION]
    service = backend.services[runner.cloudmap.service_id]
    return {i.instance_id for i in service.instances}


def healthy_in_backend(runner: TaskRunner) -> set[str]:
    backend = servicediscovery_backends[DEFAULT_ACCOUNT_ID][REGION]
    service = backend.services[runner.cloudmap.service_id]
    return {i.instance_id for i in service.instances if i.health_status == "HEALTHY"}


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def healthy_ids(cloudmap: CloudMap, runner: TaskRunner) -> set[str]:
    found = await cloudmap.discover(runner.namespace, runner.service_name, "HEALTHY")
    return {i["InstanceId"] for i in found}


def kinds_of(runner: TaskRunner, task: Task) -> list[TaskEventKind]:
    return [e.kind for e in runner.events if e.task.task_id == task.task_id]


@pytest.mark.timeout(60)
async def test_three_tasks_are_discovered_healthy_with_ecs_attributes_in_two_zones(
    make_runner: Callable[..., TaskRunner], cloudmap: CloudMap
) -> None:
    async with make_runner(cluster="local-cluster") as runner:
        await runner.scale(3)
        instances = await cloudmap.discover(runner.namespace, runner.service_name)

        assert len(instances) == 3
        by_id = {i["InstanceId"]: i["Attributes"] for i in instances}
        assert set(by_id) == {t.task_id for t in runner.tasks}
        for task in runner.tasks:
            attrs = by_id[task.task_id]
            assert set(attrs) >= ECS_ATTRIBUTES
            assert attrs["AWS_INSTANCE_IPV4"] == task.host
            assert attrs["AWS_INSTANCE_PORT"] == str(runner.definition.port)
            assert attrs["AVAILABILITY_ZONE"] == task.zone
            assert attrs["ECS_CLUSTER_NAME"] == "local-cluster"
            assert attrs["ECS_SERVICE_NAME"] == runner.service_name
            assert attrs["ECS_TASK_DEFINITION_FAMILY"] == "workflow-agent"
            assert attrs["REGION"] == REGION
            assert task.state is TaskState.RUNNING and task.healthy
            # The registered address really serves, and says so.
            assert await health_status(task.address) == health_pb2.HealthCheckResponse.SERVING
        hosts = [a["AWS_INSTANCE_IPV4"] for a in by_id.values()]
        assert len(set(hosts)) == 3 and all(h.startswith("127.0.0.") for h in hosts)
        zones = sorted(a["AVAILABILITY_ZONE"] for a in by_id.values())
        assert zones == ["us-east-1a", "us-east-1a", "us-east-1b"]


@pytest.mark.timeout(60)
async def test_a_task_is_registered_unhealthy_until_its_health_service_serves(
    make_runner: Callable[..., TaskRunner], cloudmap: CloudMap
) -> None:
    seen: dict[TaskEventKind, set[str]] = {}
    async with make_runner() as runner:

        def on_event(event: TaskEvent) -> None:
            if event.kind in (TaskEventKind.STARTED, TaskEventKind.HEALTHY):
                backend = servicediscovery_backends[DEFAULT_ACCOUNT_ID][REGION]
                service = backend.services[runner.cloudmap.service_id]
                mine = [i for i in service.instances if i.instance_id == event.task.task_id]
                seen[event.kind] = {i.health_status for i in mine}

        runner.add_listener(on_event)
        task = await runner.start_task()
        assert seen == {TaskEventKind.STARTED: {"UNHEALTHY"}, TaskEventKind.HEALTHY: {"HEALTHY"}}
        assert kinds_of(runner, task) == [
            TaskEventKind.PROVISIONED,
            TaskEventKind.STARTED,
            TaskEventKind.HEALTHY,
        ]
        everything = await cloudmap.discover(runner.namespace, runner.service_name, "ALL")
        assert everything[0]["Attributes"]["AWS_INIT_HEALTH_STATUS"] == "UNHEALTHY"


@pytest.mark.timeout(60)
async def test_stop_deregisters_before_sigterm_and_the_task_exits_0_within_drain_and_grace(
    make_runner: Callable[..., TaskRunner], cloudmap: CloudMap
) -> None:
    definition = fast_definition(drain_seconds=0.5, grace_seconds=1.0)
    at_draining: list[tuple[bool, bool, str]] = []
    async with make_runner(definition=definition) as runner:
        keep, task = await runner.start_tasks(2)

        def on_event(event: TaskEvent) -> None:
            if event.kind is TaskEventKind.DRAINING and event.task.task_id == task.task_id:
                assert task.process is not None
                at_draining.append(
                    (
                        task.task_id in registered_ids(runner),
                        task.process.returncode is None,
                        task.log_path.read_text(),
                    )
                )

        runner.add_listener(on_event)
        started = time.monotonic()
        info = await runner.stop(task)
        elapsed = time.monotonic() - started

        # When the DRAINING event fired: already gone from Cloud Map, process
        # alive and not yet signalled.
        [(registered, alive, log_then)] = at_draining
        assert not registered and alive
        assert "received SIGTERM" not in log_then
        assert "received SIGTERM" in task.log_path.read_text()
        assert kinds_of(runner, task)[-3:] == [
            TaskEventKind.DRAINING,
            TaskEventKind.STOPPING,
            TaskEventKind.STOPPED,
        ]
        assert info.state is TaskState.STOPPED and info.exit_code == 0
        # drain 0.5 + grace 1.0, plus the interpreter's exit.
        assert elapsed < 0.5 + 1.0 + 1.0, elapsed
        assert elapsed >= 0.5
        assert await healthy_ids(cloudmap, runner) == {keep.task_id}


@pytest.mark.timeout(60)
async def test_stop_timeout_ends_in_sigkill(make_runner: Callable[..., TaskRunner]) -> None:
    # The agent would drain for 30 s; ECS waits stopTimeout (here 1 s) and kills.
    definition = fast_definition(drain_seconds=30.0, stop_timeout=1.0)
    async with make_runner(definition=definition) as runner:
        task = await runner.start_task()
        started = time.monotonic()
        info = await runner.stop(task)
        elapsed = time.monotonic() - started

        assert info.exit_code == -signal.SIGKILL
        assert 1.0 <= elapsed < 3.0, elapsed
        assert TaskEventKind.KILLED in kinds_of(runner, task)


@pytest.mark.timeout(60)
async def test_a_killed_task_is_noticed_and_deregistered(
    make_runner: Callable[..., TaskRunner], cloudmap: CloudMap
) -> None:
    async with make_runner() as runner:
        survivor, victim = await runner.start_tasks(2)
        await runner.kill(victim, wait=False)

        assert await wait_until(lambda: victim.state is TaskState.STOPPED, timeout=5)
        assert victim.exit_code == -signal.SIGKILL
        assert victim.exited_by_itself
        assert "Essential container in task exited" in (victim.stopped_reason or "")
        assert kinds_of(runner, victim)[-4:] == [
            TaskEventKind.KILLED,
            TaskEventKind.EXITED,
            TaskEventKind.DRAINING,
            TaskEventKind.STOPPED,
        ]
        everything = await cloudmap.discover(runner.namespace, runner.service_name, "ALL")
        assert [i["InstanceId"] for i in everything] == [survivor.task_id]
        assert runner.tasks == [survivor]


@pytest.mark.timeout(60)
async def test_with_replace_crashed_a_killed_task_is_replaced(
    make_runner: Callable[..., TaskRunner], cloudmap: CloudMap
) -> None:
    async with make_runner(replace_crashed=True) as runner:
        first, second = await runner.start_tasks(2)
        await runner.kill(first)

        async def two_healthy() -> bool:
            return len(await healthy_ids(cloudmap, runner)) == 2

        assert await wait_until(two_healthy, timeout=20, interval=0.1)
        ids = await healthy_ids(cloudmap, runner)
        assert second.task_id in ids and first.task_id not in ids
        [replacement] = [t for t in runner.tasks if t not in (first, second)]
        # Placed in the zone the crashed task left, keeping the spread.
        assert replacement.zone == first.zone


@pytest.mark.timeout(90)
async def test_scale_out_to_four_and_in_to_two(
    make_runner: Callable[..., TaskRunner], cloudmap: CloudMap
) -> None:
    async with make_runner() as runner:
        await runner.scale(2)
        await runner.scale(4)
        assert len(await healthy_ids(cloudmap, runner)) == 4
        assert sorted(t.zone for t in runner.tasks) == ["us-east-1a"] * 2 + ["us-east-1b"] * 2

        before = list(runner.tasks)
        await runner.scale(2)
        ids = await healthy_ids(cloudmap, runner)
        assert ids == {t.task_id for t in runner.tasks}
        assert len(ids) == 2
        # Scale-in keeps one task per zone and stops the newest.
        assert sorted(t.zone for t in runner.tasks) == ["us-east-1a", "us-east-1b"]
        assert {t.task_id for t in runner.tasks} == {t.task_id for t in before[:2]}
        stopped = [t for t in before if t.state is TaskState.STOPPED]
        assert len(stopped) == 2 and all(t.exit_code == 0 for t in stopped)


@pytest.mark.timeout(120)
async def test_rolling_deploy_replaces_every_task_and_never_drops_below_three_healthy(
    make_runner: Callable[..., TaskRunner], cloudmap: CloudMap
) -> None:
    async with make_runner() as runner:
        await runner.scale(3)
        old = {t.task_id for t in runner.tasks}
        samples: list[int] = []
        done = asyncio.Event()

        async def sample() -> None:
            while not done.is_set():
                samples.append(len(await healthy_ids(cloudmap, runner)))
                await asyncio.sleep(0.02)

        # At every event, what a client would find (moto's state, read in place).
        at_events: list[tuple[TaskEventKind, int]] = []
        runner.add_listener(lambda e: at_events.append((e.kind, len(healthy_in_backend(runner)))))

        sampler = asyncio.create_task(sample())
        new_definition = await runner.rolling_deploy()
        done.set()
        await sampler

        new = {t.task_id for t in runner.tasks}
        assert len(new) == 3 and not new & old
        assert all(t.definition == new_definition for t in runner.tasks)
        assert new_definition.revision == 2
        assert await healthy_ids(cloudmap, runner) == new
        assert len(samples) >= 20, samples
        assert min(samples) >= 3, samples
        assert min(n for _, n in at_events) >= 3, at_events
        # Each new task is healthy (4 registered) before an old one goes.
        assert [n for kind, n in at_events if kind is TaskEventKind.HEALTHY] == [4, 4, 4]
        assert [n for kind, n in at_events if kind is TaskEventKind.DRAINING] == [3, 3, 3]
        # Still spread: both zones, 2 and 1 (which one has 2 depends on the order).
        per_zone = sorted(Counter(t.zone for t in runner.tasks).values())
        assert per_zone == [1, 2]


@pytest.mark.timeout(60)
async def test_a_stalled_task_turns_unhealthy_in_cloud_map_and_recovers(
    make_runner: Callable[..., TaskRunner], cloudmap: CloudMap
) -> None:
    async with make_runner(health_interval=0.1, unhealthy_threshold=2) as runner:
        task = await runner.start_task()
        assert task.process is not None
        task.process.send_signal(signal.SIGSTOP)
        try:

            async def unhealthy() -> bool:
                return task.task_id not in await healthy_ids(cloudmap, runner)

            assert await wait_until(unhealthy, timeout=10, interval=0.1)
            assert not task.healthy and task.state is TaskState.RUNNING
        finally:
            task.process.send_signal(signal.SIGCONT)

        async def healthy() -> bool:
            return task.task_id in await healthy_ids(cloudmap, runner)

        assert await wait_until(healthy, timeout=10, interval=0.1)
        assert kinds_of(runner, task)[-2:] == [TaskEventKind.UNHEALTHY, TaskEventKind.HEALTHY]


@pytest.mark.timeout(60)
async def test_a_task_that_cannot_start_fails_with_its_log(
    make_runner: Callable[..., TaskRunner], cloudmap: CloudMap
) -> None:
    definition = fast_definition(extra_args=("--no-such-option",))
    async with make_runner(definition=definition) as runner:
        with pytest.raises(TaskStartError) as caught:
            await runner.start_task()
        message = str(caught.value)
        assert "stopped before it was healthy" in message
        assert "--no-such-option" in message  # the agent's own usage error, from its log
        assert runner.tasks == []
        assert len(runner.all_tasks) == 3  # three attempts, each on a fresh task
        assert await cloudmap.discover(runner.namespace, runner.service_name, "ALL") == []


@pytest.mark.timeout(60)
async def test_aclose_stops_everything_and_the_manifest_shows_it(
    make_runner: Callable[..., TaskRunner], cloudmap: CloudMap
) -> None:
    runner = make_runner()
    await runner.start()
    tasks = await runner.start_tasks(3)
    pids = [t.pid for t in tasks]
    assert all(pid is not None for pid in pids)

    manifest = json.loads(await asyncio.to_thread((await runner.write_manifest()).read_text))
    assert manifest["service"] == runner.service_name
    listed = {t["task_id"]: t for t in manifest["tasks"]}
    for task in tasks:
        entry = listed[task.task_id]
        assert entry["address"] == task.address and entry["state"] == "RUNNING"
        assert entry["log_path"] == str(task.log_path) and task.log_path.exists()
        assert "serving on" in task.log_path.read_text()

    await runner.aclose()
    assert all(process_gone(pid) for pid in pids if pid is not None)
    assert all(t.state is TaskState.STOPPED and t.exit_code == 0 for t in tasks)
    assert await cloudmap.discover(runner.namespace, runner.service_name, "ALL") == []
    manifest = json.loads(await asyncio.to_thread(runner.manifest_path.read_text))
    assert {t["state"] for t in manifest["tasks"]} == {"STOPPED"}
    await runner.aclose()  # idempotent


@pytest.mark.timeout(60)
async def test_a_cancelled_start_and_a_close_during_start_leave_nothing_behind(
    make_runner: Callable[..., TaskRunner], cloudmap: CloudMap
) -> None:
    runner = make_runner()
    await runner.start()
    # Cancelled right away, mid-launch: the task still launches and is tracked.
    starting = asyncio.create_task(runner.start_task())
    await asyncio.sleep(0)
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert await wait_until(lambda: len(runner.tasks) == 1, timeout=5)

    # Closed while two more are starting: their starts fail, and everything stops.
    more = asyncio.create_task(runner.start_tasks(2))
    assert await wait_until(lambda: len(runner.tasks) == 3, timeout=5)
    await runner.aclose()
    with pytest.raises(TaskStartError):
        await more
    tasks = runner.all_tasks
    assert len(tasks) == 3 and all(t.state is TaskState.STOPPED for t in tasks)
    assert all(process_gone(t.pid) for t in tasks if t.pid is not None)
    assert await cloudmap.discover(runner.namespace, runner.service_name, "ALL") == []


@pytest.mark.timeout(60)
async def test_with_fresh_addresses_a_new_task_never_reuses_a_stopped_tasks_address(
    make_runner: Callable[..., TaskRunner],
) -> None:
    async with make_runner(fresh_addresses=True) as runner:
        first = await runner.start_task()
        await runner.stop(first)
        second = await runner.start_task()
        assert second.host != first.host
    async with make_runner() as runner:  # the default reuses the lowest free address
        first = await runner.start_task()
        await runner.stop(first)
        second = await runner.start_task()
        assert second.host == first.host
