"""Values of the local ECS-like stack: task definition, task snapshots and events."""

from __future__ import annotations

import dataclasses
import enum
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecsgrpc.errors import ConfigError
from ecsgrpc_apps.local.states import TaskState

__all__ = ["TaskDefinition", "TaskEvent", "TaskEventKind", "TaskInfo"]

# ECS's defaults: stopTimeout 30 s (at most 120 s).
DEFAULT_STOP_TIMEOUT = 30.0
MAX_STOP_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class TaskDefinition:
    """What every task of the service runs: ``python -m ecsgrpc agent`` and its options.

    ``port`` is fixed per service (tasks differ by address, as awsvpc tasks do).
    The agent options left ``None`` take the agent's own defaults; ``env`` is
    added to the runner's environment. Raises ConfigError for a bad value.
    """

    family: str = "workflow-agent"
    revision: int = 1
    port: int = 50051
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    drain_seconds: float | None = None
    grace_seconds: float | None = None
    event_delay_seconds: float | None = None
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.family:
            raise ConfigError("task definition family must not be empty")
        if self.revision < 1:
            raise ConfigError(f"task definition revision must be >= 1, got {self.revision}")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"task port must be 1-65535, got {self.port}")
        if not 0 < self.stop_timeout <= MAX_STOP_TIMEOUT:
            limit = f"(0, {MAX_STOP_TIMEOUT:g}]"
            raise ConfigError(f"stop_timeout must be in {limit} seconds, got {self.stop_timeout}")
        for name in ("drain_seconds", "grace_seconds", "event_delay_seconds"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")

    @property
    def name(self) -> str:
        """``family:revision``, as ECS names a task definition."""
        return f"{self.family}:{self.revision}"

    def next_revision(self, **changes: Any) -> TaskDefinition:
        """The next revision, with ``changes`` applied (what a deployment registers)."""
        return dataclasses.replace(self, revision=self.revision + 1, **changes)

    def command(self, host: str, instance_id: str) -> list[str]:
        """The argv of one task's process."""
        argv = [sys.executable, "-m", "ecsgrpc", "agent", "--host", host, "--port", str(self.port)]
        argv += ["--instance-id", instance_id]
        options = {
            "--drain-seconds": self.drain_seconds,
            "--grace-seconds": self.grace_seconds,
            "--event-delay": self.event_delay_seconds,
        }
        for flag, value in options.items():
            if value is not None:
                argv += [flag, f"{value:g}"]
        return [*argv, *self.extra_args]


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A snapshot of one task (what ``DescribeTasks`` would say), safe to keep."""

    task_id: str
    definition: str
    host: str
    port: int
    zone: str
    state: TaskState
    healthy: bool
    pid: int | None
    exit_code: int | None
    log_path: Path
    created_at: float
    stopped_reason: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def short_id(self) -> str:
        """The first 8 characters of the task id, as the ECS console shows it."""
        return self.task_id[:8]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the run directory's ``tasks.json`` holds a list of these)."""
        return {
            "task_id": self.task_id,
            "definition": self.definition,
            "address": self.address,
            "host": self.host,
            "port": self.port,
            "zone": self.zone,
            "state": self.state.value,
            "healthy": self.healthy,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "log_path": str(self.log_path),
            "created_at": self.created_at,
            "stopped_reason": self.stopped_reason,
        }


class TaskEventKind(enum.Enum):
    """What happened to a task, in the words a live view wants."""

    PROVISIONED = "provisioned"  # address and zone chosen
    STARTED = "started"  # process spawned, registered in Cloud Map (UNHEALTHY)
    HEALTHY = "healthy"  # health SERVING, Cloud Map HEALTHY
    UNHEALTHY = "unhealthy"  # health checks failing, Cloud Map UNHEALTHY
    DRAINING = "draining"  # deregistered from Cloud Map
    STOPPING = "stopping"  # SIGTERM sent
    KILLED = "killed"  # SIGKILL sent (kill(), or stopTimeout passed)
    EXITED = "exited"  # the process ended without being asked to stop
    STOPPED = "stopped"  # final


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One event of the runner's log; ``task`` is the snapshot right after it."""

    kind: TaskEventKind
    task: TaskInfo
    message: str
    at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "kind": self.kind.value,
            "task_id": self.task.task_id,
            "message": self.message,
        }
