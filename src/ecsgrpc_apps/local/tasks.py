"""An ECS-like service of Workflow Agent tasks on this machine.

:class:`TaskRunner` does locally what the ECS service scheduler does with
Cloud Map service discovery:

- **start**: each task is a ``python -m ecsgrpc agent`` process on its own
  loopback address (127.0.0.2, 127.0.0.3, ...) and the service's fixed port,
  placed in one of two availability zones (spread evenly). It is registered in
  Cloud Map with the attributes ECS writes, first UNHEALTHY, and marked
  HEALTHY (custom health status) once its ``grpc.health.v1`` service says
  SERVING. A task whose checks then fail ``unhealthy_threshold`` times in a
  row is marked UNHEALTHY until it recovers.
- **stop**: deregister from Cloud Map, SIGTERM, wait up to the task
  definition's ``stop_timeout``, SIGKILL.
- **crash**: :meth:`TaskRunner.kill` sends SIGKILL without deregistering;
  the runner sees the exit at once and deregisters the task, as ECS does
  once it sees the task stop (and, with ``replace_crashed``, starts another).
- **scale** out and in (in: from the busiest zone, newest first) and a
  **rolling deploy** (start new, wait healthy, stop old, one at a time: ECS's
  minimumHealthyPercent 100 / maximumPercent 200, done serially).

Every change is a :class:`~ecsgrpc_apps.local.task.TaskEvent`, kept in
:attr:`TaskRunner.events` and passed to listeners. Task output goes to one log
file per task in the run directory, next to ``tasks.json`` (addresses, states,
log paths), which is rewritten on every event. Use ``async with``; everything
started is stopped by :meth:`TaskRunner.aclose`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tempfile
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from ecsgrpc.errors import EcsGrpcError
from ecsgrpc_apps.local.addresses import choose_address
from ecsgrpc_apps.local.emulator import REGION, AwsEmulator, CloudMapService
from ecsgrpc_apps.local.handle import Task
from ecsgrpc_apps.local.health import HealthResult
from ecsgrpc_apps.local.manifest import ManifestWriter
from ecsgrpc_apps.local.placement import choose_zone, scale_in_order
from ecsgrpc_apps.local.states import TaskState, can_transition
from ecsgrpc_apps.local.task import TaskDefinition, TaskEvent, TaskEventKind, TaskInfo

__all__ = ["Task", "TaskRunner", "TaskStartError"]  # Task re-exported from .handle

log = logging.getLogger(__name__)

EventListener = Callable[[TaskEvent], None]
_R = TypeVar("_R")

_START_ATTEMPTS = 3
_LOG_TAIL_CHARS = 2000


class TaskStartError(EcsGrpcError):
    """A task did not become healthy; the message names it and quotes its log's end."""


class TaskRunner:
    """One ECS-like service of agent tasks registered in the emulator's Cloud Map.

    Use from one event loop: ``async with TaskRunner(emulator) as runner:``.
    Methods that start tasks raise :class:`TaskStartError` when a task does not
    become healthy within ``startup_timeout``; stopping never raises for a
    task that is already gone.
    """

    def __init__(
        self,
        emulator: AwsEmulator,
        *,
        definition: TaskDefinition | None = None,
        cluster: str = "workflow-local",
        namespace: str = "workflow.local",
        service: str = "workflow-agent",
        zones: Sequence[str] = (f"{REGION}a", f"{REGION}b"),
        run_dir: Path | None = None,
        first_host: int = 2,
        health_interval: float = 0.5,
        unhealthy_threshold: int = 3,
        startup_timeout: float = 30.0,
        replace_crashed: bool = False,
        fresh_addresses: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not zones:
            raise ValueError("at least one availability zone is needed")
        self._emulator = emulator
        self._definition = definition or TaskDefinition()
        self.cluster = cluster
        self.namespace = namespace
        self.service_name = service
        self.zones = tuple(zones)
        self._run_dir = run_dir
        self._first_host = first_host
        self._health_interval = health_interval
        self._unhealthy_threshold = unhealthy_threshold
        self._startup_timeout = startup_timeout
        self._replace_crashed = replace_crashed
        # awsvpc gives each new task a new ENI address; with fresh_addresses a
        # task never gets an address an earlier task of this runner had.
        self._fresh_addresses = fresh_addresses
        self._env = dict(env or {})
        self._cloudmap: CloudMapService | None = None
        self._manifest: ManifestWriter | None = None
        self._tasks: list[Task] = []
        self._events: list[TaskEvent] = []
        self._listeners: list[EventListener] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._closing = False

    # -- reading ---------------------------------------------------------------
    @property
    def definition(self) -> TaskDefinition:
        """The task definition new tasks use (changed by :meth:`rolling_deploy`)."""
        return self._definition

    @property
    def cloudmap(self) -> CloudMapService:
        if self._cloudmap is None:
            raise RuntimeError("runner not started")
        return self._cloudmap

    @property
    def run_dir(self) -> Path:
        if self._run_dir is None:
            raise RuntimeError("runner not started")
        return self._run_dir

    @property
    def manifest_path(self) -> Path:
        """``tasks.json`` in the run directory: every task's address, state and log path."""
        return self.run_dir / "tasks.json"

    @property
    def tasks(self) -> list[Task]:
        """Tasks the service counts (PROVISIONING, PENDING or RUNNING), oldest first."""
        return [t for t in self._tasks if t.state.live]

    @property
    def all_tasks(self) -> list[Task]:
        """Every task ever started, stopped ones included."""
        return list(self._tasks)

    @property
    def events(self) -> list[TaskEvent]:
        return list(self._events)

    async def write_manifest(self) -> Path:
        """Wait until ``tasks.json`` shows the latest state (it is written in the background)."""
        if self._manifest is not None:
            await self._manifest.flush()
        return self.manifest_path

    def add_listener(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener`` (on the loop, must not block) for each event; returns a remover."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        """Provision the Cloud Map namespace and service; create the run directory."""
        if self._cloudmap is not None:
            return
        if self._run_dir is None:
            self._run_dir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="ecsgrpc-local-"))
        else:
            await asyncio.to_thread(self._run_dir.mkdir, parents=True, exist_ok=True)
        self._cloudmap = await asyncio.to_thread(
            self._emulator.provision_cloudmap, self.namespace, self.service_name
        )
        header = {
            "cluster": self.cluster,
            "service": self.service_name,
            "namespace": self.namespace,
            "cloudmap_service_id": self._cloudmap.service_id,
            "aws_endpoint_url": self._emulator.endpoint_url,
            "run_dir": str(self._run_dir),
        }
        self._manifest = ManifestWriter(self.manifest_path, header)
        self._manifest.update([])

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every task the ECS way and wait for all of it; idempotent."""
        self._closing = True
        while True:
            pending = [t for t in self._tasks if t.state is not TaskState.STOPPED]
            waits = [self._ensure_stopper(t, "Service deleted") for t in pending]
            if not waits and not self._background:
                break
            await asyncio.gather(*waits, *list(self._background), return_exceptions=True)
        if self._manifest is not None:
            await self._manifest.flush()

    # -- starting --------------------------------------------------------------
    async def start_task(self, definition: TaskDefinition | None = None) -> Task:
        """Start one task and return it once it is RUNNING and HEALTHY in Cloud Map.

        A task whose process exits before it is healthy (say, its address was
        taken meanwhile) is retried on another address, up to 3 attempts.
        """
        for attempt in range(1, _START_ATTEMPTS + 1):
            # Shielded: a cancelled caller leaves a task that finishes
            # launching and is tracked (aclose stops it), never a half-made one.
            launch = self._spawn_background(self._launch(definition or self._definition))
            task = await asyncio.shield(launch)
            try:
                await self._wait_running(task)
            except TaskStartError:
                if attempt == _START_ATTEMPTS or self._closing or not task.exited_by_itself:
                    raise
                log.warning("task %s failed to start; retrying", task.task_id[:8])
                continue
            return task
        raise AssertionError("unreachable")

    async def start_tasks(self, count: int) -> list[Task]:
        """Start ``count`` tasks at once; raises the first start error after all settle."""
        results = await asyncio.gather(
            *(self.start_task() for _ in range(count)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [r for r in results if isinstance(r, Task)]

    async def _launch(self, definition: TaskDefinition) -> Task:
        if self._closing:
            raise TaskStartError("the runner is closing")
        taken = {
            t.host for t in self._tasks if self._fresh_addresses or t.state is not TaskState.STOPPED
        }
        host = choose_address(definition.port, taken=taken, first=self._first_host)
        zone = choose_zone(self.zones, self.tasks)
        task = Task(definition=definition, host=host, zone=zone, log_dir=self.run_dir)
        self._tasks.append(task)
        self._emit(task, TaskEventKind.PROVISIONED, f"{task.address} in {zone}")
        try:
            await self._spawn(task)
            await self._register(task)
        except Exception as exc:
            await self._abort_launch(task, f"Task failed to start: {exc}")
        else:
            self._move(task, TaskState.PENDING)
            self._emit(task, TaskEventKind.STARTED, f"pid {task.pid}, {definition.name}")
            task._health_loop = self._spawn_background(self._watch_health(task))
            task._supervisor = self._spawn_background(self._supervise(task))
        finally:
            task._launched.set()
        return task

    async def _spawn(self, task: Task) -> None:
        argv = task.definition.command(task.host, task.task_id)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self._env, **task.definition.env}
        logfile = await asyncio.to_thread(task.log_path.open, "ab")
        try:
            # A session of its own: a Ctrl-C in the terminal reaches the runner,
            # which then stops tasks the ECS way, not every task at once.
            task.process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        finally:
            await asyncio.to_thread(logfile.close)

    def _attributes(self, task: Task) -> dict[str, str]:
        """The instance attributes ECS writes when it registers a task."""
        return {
            "AWS_INSTANCE_IPV4": task.host,
            "AWS_INSTANCE_PORT": str(task.port),
            "AVAILABILITY_ZONE": task.zone,
            "AWS_INIT_HEALTH_STATUS": "UNHEALTHY",
            "ECS_CLUSTER_NAME": self.cluster,
            "ECS_SERVICE_NAME": self.service_name,
            "ECS_TASK_DEFINITION_FAMILY": task.definition.family,
            "REGION": REGION,
        }

    async def _register(self, task: Task) -> None:
        service, attributes = self.cloudmap, self._attributes(task)

        def register() -> None:
            self._emulator.register_instance(service, task.task_id, attributes)
            task._registered = True
            # moto ignores AWS_INIT_HEALTH_STATUS (every new instance is
            # HEALTHY); Cloud Map honours it, so set it explicitly.
            self._emulator.set_instance_health(service, task.task_id, healthy=False)

        await self._cloudmap_call(task, register)

    async def _abort_launch(self, task: Task, reason: str) -> None:
        task.stopped_reason = reason
        if task.process is not None and task.process.returncode is None:
            task.process.kill()
        if task.process is not None:
            task.exit_code = await task.process.wait()
        await self._deregister(task)  # in case registering got that far
        await task._check.aclose()
        self._finish(task)

    async def _wait_running(self, task: Task) -> None:
        try:
            async with asyncio.timeout(self._startup_timeout):
                running = await asyncio.shield(task._running)
        except TimeoutError:
            await self._ensure_stopper(task, "Task failed to start: not healthy in time")
            tail = await self._log_tail(task)
            raise TaskStartError(
                f"task {task.task_id[:8]} at {task.address} was not healthy within "
                f"{self._startup_timeout:g}s; log {task.log_path}:\n{tail}"
            ) from None
        if not running:
            await task.wait_stopped()
            tail = await self._log_tail(task)
            raise TaskStartError(
                f"task {task.task_id[:8]} at {task.address} stopped before it was healthy "
                f"({task.stopped_reason}); log {task.log_path}:\n{tail}"
            )

    @staticmethod
    async def _log_tail(task: Task) -> str:
        def read() -> str:
            try:
                return task.log_path.read_text(errors="replace")[-_LOG_TAIL_CHARS:]
            except OSError as exc:
                return f"(cannot read the log: {exc})"

        return await asyncio.to_thread(read)

    # -- health and exits ------------------------------------------------------
    async def _watch_health(self, task: Task) -> None:
        failures = 0
        while True:
            result = await task._check.check()
            try:
                if result is HealthResult.SERVING:
                    failures = 0
                    if not task.healthy:
                        await self._set_healthy(task, True)
                else:
                    failures += 1
                    if task.healthy and failures >= self._unhealthy_threshold:
                        await self._set_healthy(task, False, f"{failures} checks: {result.value}")
            except Exception as exc:  # Cloud Map unreachable: try again next time
                log.warning("health update of task %s failed: %s", task.task_id[:8], exc)
            await asyncio.sleep(self._health_interval)

    async def _set_healthy(self, task: Task, healthy: bool, why: str = "SERVING") -> None:
        service = self.cloudmap

        def update() -> None:
            if task._registered:
                self._emulator.set_instance_health(service, task.task_id, healthy=healthy)

        # Cloud Map first: once a task counts as healthy here, clients can see it.
        await self._cloudmap_call(task, update)
        task.healthy = healthy
        if healthy and task.state is TaskState.PENDING:
            self._move(task, TaskState.RUNNING)
        kind = TaskEventKind.HEALTHY if healthy else TaskEventKind.UNHEALTHY
        self._emit(task, kind, why)
        if healthy and not task._running.done():
            task._running.set_result(True)

    async def _supervise(self, task: Task) -> None:
        assert task.process is not None
        code = await task.process.wait()
        task.exit_code = code
        if task._stopper is not None:
            return
        task.exited_by_itself = True
        self._emit(task, TaskEventKind.EXITED, f"exit code {code}")
        was_running = task.state is TaskState.RUNNING
        await self._ensure_stopper(task, f"Essential container in task exited (exit code {code})")
        if was_running and self._replace_crashed and not self._closing:
            self._spawn_background(self._replace(task))

    async def _replace(self, task: Task) -> None:
        try:
            await self.start_task()
        except TaskStartError as exc:
            log.warning("replacing task %s failed: %s", task.task_id[:8], exc)

    # -- stopping --------------------------------------------------------------
    async def stop(self, task: Task, *, reason: str = "Task stopped by user") -> TaskInfo:
        """Stop ``task`` as ECS does: deregister, SIGTERM, ``stop_timeout``, SIGKILL.

        Returns the STOPPED snapshot. Stopping a stopping or stopped task waits
        for the stop already under way.
        """
        await self._ensure_stopper(task, reason)
        return task.info()

    async def kill(self, task: Task, *, wait: bool = True) -> None:
        """SIGKILL ``task`` without deregistering it first, as a crash would.

        The runner notices the exit and deregisters it; with ``wait`` this
        returns once that is done.
        """
        process = task.process
        if process is not None and process.returncode is None:
            process.kill()
            self._emit(task, TaskEventKind.KILLED, "SIGKILL (simulated crash)")
        if wait:
            await task.wait_stopped()

    def _ensure_stopper(self, task: Task, reason: str) -> asyncio.Future[None]:
        if task._stopper is None:
            task._stopper = self._spawn_background(self._stop_sequence(task, reason))
        return asyncio.shield(task._stopper)

    async def _stop_sequence(self, task: Task, reason: str) -> None:
        await task._launched.wait()
        if task.state is TaskState.STOPPED:
            return
        if task.state is TaskState.PROVISIONING:  # the launch was interrupted
            await self._abort_launch(task, reason)
            return
        task.stopped_reason = reason
        if task._health_loop is not None:
            task._health_loop.cancel()
            await asyncio.wait({task._health_loop})
        # Checks are over; closing now spares the log a GOAWAY notice.
        await task._check.aclose()
        self._move(task, TaskState.DEACTIVATING)
        task.healthy = False
        await self._deregister(task)
        self._emit(task, TaskEventKind.DRAINING, f"deregistered from Cloud Map: {reason}")
        process = task.process
        assert process is not None
        if process.returncode is None:
            self._move(task, TaskState.STOPPING)
            process.send_signal(signal.SIGTERM)
            self._emit(task, TaskEventKind.STOPPING, "SIGTERM")
            await self._wait_or_kill(task, process)
        task.exit_code = await process.wait()
        self._finish(task)

    async def _wait_or_kill(self, task: Task, process: asyncio.subprocess.Process) -> None:
        timeout = task.definition.stop_timeout
        try:
            async with asyncio.timeout(timeout):
                await process.wait()
        except TimeoutError:
            if process.returncode is None:
                process.kill()
                self._emit(task, TaskEventKind.KILLED, f"SIGKILL after stopTimeout {timeout:g}s")

    async def _deregister(self, task: Task) -> None:
        service = self.cloudmap

        def deregister() -> None:
            if task._registered:
                task._registered = False
                self._emulator.deregister_instance(service, task.task_id)

        try:
            await self._cloudmap_call(task, deregister)
        except Exception as exc:
            # The stop goes on: a stopped task must not keep running because
            # the discovery API is down (ECS retries; this logs).
            log.warning("deregistering task %s failed: %s", task.task_id[:8], exc)

    def _finish(self, task: Task) -> None:
        self._move(task, TaskState.STOPPED)
        why = f"exit code {task.exit_code}: {task.stopped_reason}"
        self._emit(task, TaskEventKind.STOPPED, why)
        task._stopped.set()
        if not task._running.done():
            task._running.set_result(False)

    # -- scaling and deployments -----------------------------------------------
    async def scale(self, count: int) -> None:
        """Run ``count`` tasks: start the missing ones at once, or stop the extra ones."""
        if count < 0:
            raise ValueError(f"desired count must be >= 0, got {count}")
        live = self.tasks
        if count > len(live):
            await self.start_tasks(count - len(live))
        elif count < len(live):
            victims = scale_in_order(live, len(live) - count)
            reason = "Scaling activity initiated by the local service"
            await asyncio.gather(*(self.stop(t, reason=reason) for t in victims))

    async def rolling_deploy(self, definition: TaskDefinition | None = None) -> TaskDefinition:
        """Replace every task by one of ``definition`` (default: the next revision).

        One at a time: start a new task, wait until it is healthy, then stop an
        old one, so the healthy count never drops below the desired count.
        Returns the definition now in use. When a new task fails to start,
        the deployment stops there (the old tasks left keep running) and
        TaskStartError is raised.
        """
        new = definition or self._definition.next_revision()
        old = [t for t in self.tasks if t.definition != new]
        self._definition = new
        for task in old:
            await self.start_task(new)
            await self.stop(task, reason=f"Deployment: replaced by {new.name}")
        return new

    # -- plumbing --------------------------------------------------------------
    async def _cloudmap_call(self, task: Task, call: Callable[[], None]) -> None:
        """Run a blocking Cloud Map write in a thread, in order per task.

        The write runs in its own asyncio task under the task's lock, so a
        cancelled caller never lets a later write overtake one still running.
        """

        async def locked() -> None:
            async with task._cloudmap_lock:
                await asyncio.to_thread(call)

        await asyncio.shield(self._spawn_background(locked()))

    def _spawn_background(self, coro: Coroutine[Any, Any, _R]) -> asyncio.Task[_R]:
        job = asyncio.get_running_loop().create_task(coro)
        self._background.add(job)
        job.add_done_callback(self._background.discard)
        return job

    def _move(self, task: Task, new: TaskState) -> None:
        if not can_transition(task.state, new):
            raise RuntimeError(f"task cannot go from {task.state.value} to {new.value}")
        task.state = new

    def _emit(self, task: Task, kind: TaskEventKind, message: str) -> None:
        event = TaskEvent(kind, task.info(), message)
        self._events.append(event)
        log.info("task %s %s: %s", task.task_id[:8], kind.value, message)
        if self._manifest is not None:
            self._manifest.update([t.info() for t in self._tasks])
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("task event listener failed")
