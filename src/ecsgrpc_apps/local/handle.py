"""The handle on one running local task (see :mod:`ecsgrpc_apps.local.tasks`)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from ecsgrpc_apps.local.health import HealthCheck
from ecsgrpc_apps.local.states import TaskState
from ecsgrpc_apps.local.task import TaskDefinition, TaskInfo

__all__ = ["Task"]


class Task:
    """A handle on one task of the runner: read it, or pass it to ``stop``/``kill``.

    Its fields change as the runner moves it through :class:`TaskState`;
    :meth:`info` gives a consistent snapshot. The private fields belong to
    the runner. Create it on the event loop that will run it.
    """

    def __init__(self, *, definition: TaskDefinition, host: str, zone: str, log_dir: Path) -> None:
        self.task_id = uuid.uuid4().hex
        self.definition = definition
        self.host = host
        self.zone = zone
        name = f"{definition.family}-{definition.revision}-{self.task_id[:8]}.log"
        self.log_path = log_dir / name
        self.created_at = time.time()
        self.state = TaskState.PROVISIONING
        self.healthy = False
        self.exit_code: int | None = None
        self.stopped_reason: str | None = None
        self.process: asyncio.subprocess.Process | None = None
        # True when the process ended without being asked to (a crash).
        self.exited_by_itself = False
        self._check = HealthCheck(self.address)
        self._cloudmap_lock = asyncio.Lock()
        self._registered = False
        self._launched = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._health_loop: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopper: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self.definition.port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def info(self) -> TaskInfo:
        return TaskInfo(
            task_id=self.task_id,
            definition=self.definition.name,
            host=self.host,
            port=self.port,
            zone=self.zone,
            state=self.state,
            healthy=self.healthy,
            pid=self.pid,
            exit_code=self.exit_code,
            log_path=self.log_path,
            created_at=self.created_at,
            stopped_reason=self.stopped_reason,
        )

    async def wait_stopped(self) -> None:
        """Return once the task is STOPPED."""
        await self._stopped.wait()

    def __repr__(self) -> str:
        return f"<Task {self.task_id[:8]} {self.address} {self.zone} {self.state.value}>"
