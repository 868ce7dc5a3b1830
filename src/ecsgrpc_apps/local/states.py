"""The lifecycle of a local task, after ECS's task lifecycle (pure, no I/O).

::

    PROVISIONING --spawned, registered UNHEALTHY--> PENDING --health SERVING--> RUNNING
         |                                              |                          |
         | (could not start)                            +------> DEACTIVATING <----+
         v                                                       |  (deregistered)
      STOPPED <----------- (process already gone) ---------------+
         ^                                                       v
         +------------------- exited (or SIGKILL) ------------ STOPPING (SIGTERM sent)

ECS's own states between these (ACTIVATING, DEPROVISIONING) have no work to
do locally and are left out. Health while RUNNING is a separate flag, as
ECS keeps ``healthStatus`` apart from ``lastStatus``.
"""

from __future__ import annotations

import enum

__all__ = ["TaskState", "can_transition"]


class TaskState(enum.Enum):
    """Where a task is in its life; ``STOPPED`` is final."""

    PROVISIONING = "PROVISIONING"  # id, address and zone chosen; no process yet
    PENDING = "PENDING"  # process started, registered in Cloud Map as UNHEALTHY
    RUNNING = "RUNNING"  # health said SERVING once; Cloud Map marked HEALTHY
    DEACTIVATING = "DEACTIVATING"  # being deregistered from Cloud Map
    STOPPING = "STOPPING"  # SIGTERM sent; SIGKILL after stopTimeout
    STOPPED = "STOPPED"  # process gone, exit code known

    @property
    def live(self) -> bool:
        """Counted by the service (desired count): not on its way out."""
        return self in (TaskState.PROVISIONING, TaskState.PENDING, TaskState.RUNNING)


_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.PROVISIONING: frozenset({TaskState.PENDING, TaskState.STOPPED}),
    TaskState.PENDING: frozenset({TaskState.RUNNING, TaskState.DEACTIVATING}),
    TaskState.RUNNING: frozenset({TaskState.DEACTIVATING}),
    TaskState.DEACTIVATING: frozenset({TaskState.STOPPING, TaskState.STOPPED}),
    TaskState.STOPPING: frozenset({TaskState.STOPPED}),
    TaskState.STOPPED: frozenset(),
}


def can_transition(current: TaskState, new: TaskState) -> bool:
    """Whether the lifecycle allows ``current -> new``."""
    return new in _TRANSITIONS[current]
