"""Pure parts of the local stack: lifecycle table, placement, definitions, addresses."""

from __future__ import annotations

import itertools
import socket
import sys
from dataclasses import dataclass

import pytest

from ecsgrpc.errors import ConfigError
from ecsgrpc_apps.local.addresses import choose_address, port_is_free
from ecsgrpc_apps.local.placement import choose_zone, scale_in_order
from ecsgrpc_apps.local.states import TaskState, can_transition
from ecsgrpc_apps.local.task import TaskDefinition
from tests.local.conftest import free_port

S = TaskState


def test_the_lifecycle_moves_only_forward_like_ecs() -> None:
    path = [S.PROVISIONING, S.PENDING, S.RUNNING, S.DEACTIVATING, S.STOPPING, S.STOPPED]
    for current, new in itertools.pairwise(path):
        assert can_transition(current, new)
    assert can_transition(S.PENDING, S.DEACTIVATING)  # stopped before healthy
    assert can_transition(S.DEACTIVATING, S.STOPPED)  # the process had already exited
    assert can_transition(S.PROVISIONING, S.STOPPED)  # could not start
    for state in S:
        assert not can_transition(S.STOPPED, state)
        assert not can_transition(state, S.PROVISIONING)
    assert not can_transition(S.RUNNING, S.STOPPING)  # never signalled while registered
    assert not can_transition(S.RUNNING, S.STOPPED)
    assert [s for s in S if s.live] == [S.PROVISIONING, S.PENDING, S.RUNNING]


@dataclass(frozen=True)
class Placed:
    zone: str
    created_at: float


def test_new_tasks_go_to_the_zone_with_fewest() -> None:
    zones = ("a", "b")
    assert choose_zone(zones, []) == "a"
    assert choose_zone(zones, [Placed("a", 1)]) == "b"
    assert choose_zone(zones, [Placed("a", 1), Placed("b", 2)]) == "a"
    assert choose_zone(zones, [Placed("b", 1), Placed("b", 2), Placed("a", 3)]) == "a"


def test_scale_in_takes_from_the_busiest_zone_newest_first() -> None:
    a1, a2, a3, b1 = Placed("a", 1), Placed("a", 2), Placed("a", 3), Placed("b", 4)
    assert scale_in_order([a1, a2, a3, b1], 1) == [a3]
    assert scale_in_order([a1, a2, a3, b1], 2) == [a3, a2]
    assert scale_in_order([a1, a2, a3, b1], 3) == [a3, a2, b1]  # then a tie: newest
    assert scale_in_order([a1], 5) == [a1]


def test_a_task_definition_builds_the_agent_command() -> None:
    d = TaskDefinition(port=50061, drain_seconds=0.5, event_delay_seconds=0.01, extra_args=("-x",))
    assert d.command("127.0.0.5", "abc") == [
        sys.executable,
        "-m",
        "ecsgrpc",
        "agent",
        "--host",
        "127.0.0.5",
        "--port",
        "50061",
        "--instance-id",
        "abc",
        "--drain-seconds",
        "0.5",
        "--event-delay",
        "0.01",
        "-x",
    ]
    nxt = d.next_revision(grace_seconds=2.0)
    assert (nxt.revision, nxt.grace_seconds, nxt.port, nxt.name) == (
        2,
        2.0,
        50061,
        "workflow-agent:2",
    )


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"port": 0}, "0"),
        ({"port": 70000}, "70000"),
        ({"stop_timeout": 0}, "stop_timeout"),
        ({"stop_timeout": 121}, "121"),
        ({"revision": 0}, "revision"),
        ({"drain_seconds": -1}, "drain_seconds"),
        ({"family": ""}, "family"),
    ],
)
def test_a_bad_task_definition_is_a_config_error_naming_the_value(
    changes: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        TaskDefinition(**changes)  # type: ignore[arg-type]


def test_addresses_skip_taken_hosts_and_busy_ports() -> None:
    port = free_port()
    assert choose_address(port, taken=set()) == "127.0.0.2"
    assert choose_address(port, taken={"127.0.0.2"}) == "127.0.0.3"
    with socket.socket() as busy:
        busy.bind(("127.0.0.2", port))
        busy.listen()
        assert not port_is_free("127.0.0.2", port)
        assert choose_address(port, taken=set()) == "127.0.0.3"
    assert choose_address(port, taken=set(), first=7) == "127.0.0.7"
    with pytest.raises(ConfigError, match="300"):
        choose_address(port, taken=set(), first=300)
