"""The server lifecycle: one state enum and one transition table (pure, no I/O)::

    CREATED --start--> SERVING --SIGTERM--> DRAINING --drain_seconds--> STOPPING
        --in-flight calls done or grace_seconds--> STOPPED

``CREATED -> STOPPED`` (never started) and ``SERVING -> STOPPING`` (a second
signal: stop at once) are the only shortcuts.
"""

from __future__ import annotations

import enum

__all__ = ["ServerState", "can_transition"]


class ServerState(enum.Enum):
    CREATED = "created"
    SERVING = "serving"
    DRAINING = "draining"
    STOPPING = "stopping"
    STOPPED = "stopped"


_TRANSITIONS: dict[ServerState, frozenset[ServerState]] = {
    ServerState.CREATED: frozenset({ServerState.SERVING, ServerState.STOPPED}),
    ServerState.SERVING: frozenset({ServerState.DRAINING, ServerState.STOPPING}),
    ServerState.DRAINING: frozenset({ServerState.STOPPING}),
    ServerState.STOPPING: frozenset({ServerState.STOPPED}),
    ServerState.STOPPED: frozenset(),
}


def can_transition(current: ServerState, new: ServerState) -> bool:
    """Whether the lifecycle allows ``current -> new`` (pure; tested on its own)."""
    return new in _TRANSITIONS[current]
