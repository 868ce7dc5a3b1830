"""The fault scenarios say when the machine, not the clients, caused their failures.

Their loads are open loop at a fixed rate: on a machine busy with other jobs
the calls queue and streams reach their deadline for every contender alike
(a quick ``scale_out`` run once failed about 45 % of every contender's calls
this way). The load records how late it started calls and the scenario adds a
note saying the run measured the machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ecsgrpc_apps.bench.faults import Loads, note_overload
from ecsgrpc_apps.bench.load import Call, PacedLoad
from ecsgrpc_apps.bench.results import ScenarioResult
from ecsgrpc_apps.bench.slow import note_slow_task_overload


class InstantClient:
    """The bench's Client protocol answered at once, to drive the scheduler alone."""

    name = "instant"

    async def unary(self, timeout: float) -> str:
        return "agent-1"

    async def _events(self) -> AsyncIterator[Any]:
        return
        yield

    def stream(self, request: Any, timeout: float) -> AsyncIterator[Any]:
        return self._events()

    def retries(self) -> float:
        return 0.0

    async def aclose(self) -> None:
        return None


@pytest.mark.timeout(20)
async def test_the_load_records_how_late_a_starved_process_started_its_calls() -> None:
    load = PacedLoad(InstantClient(), rate=100.0, kinds=("unary",))
    load.start()
    await asyncio.sleep(0.2)
    time.sleep(0.8)  # on purpose: this process gets no CPU for 0.8 s
    await asyncio.sleep(0.2)
    calls = await load.stop()
    assert calls
    # The calls due during the stall started after it.
    assert load.max_late >= 0.7


def _calls(latency: float, n: int = 20, kind: str = "unary") -> list[Call]:
    return [Call(kind, start=float(i), end=float(i) + latency) for i in range(n)]


def _loads(late: float) -> Loads:
    load = PacedLoad(InstantClient(), rate=1.0)
    load.max_late = late
    return Loads([], {"instant": load})


def test_a_run_that_kept_up_has_no_note_but_records_its_numbers() -> None:
    result = ScenarioResult("scale_out", "t", ())
    assert not note_overload(result, _loads(0.01), {"instant": _calls(0.002)})
    assert result.notes == []
    assert result.params["load_start_late_max_s"] == 0.01
    assert result.params["unary_p50_ms"] == 2.0
    assert result.params["stream_p50_ms"] is None


@pytest.mark.parametrize(
    ("late", "latency", "sign"),
    [
        (2.2, 0.002, "calls started up to 2.2 s after their scheduled time"),
        (0.0, 6.0, "the median unary call took 6000 ms"),
    ],
)
def test_a_run_the_machine_could_not_keep_up_with_says_so(
    late: float, latency: float, sign: str
) -> None:
    result = ScenarioResult("scale_out", "t", ())
    assert note_overload(result, _loads(late), {"instant": _calls(latency)})
    (note,) = result.notes
    assert "did not keep up" in note
    assert sign in note
    assert "measure the machine" in note


def test_a_case_of_a_scenario_is_named_in_its_params_and_note() -> None:
    result = ScenarioResult("silent_failure", "t", ())
    assert note_overload(result, _loads(3.0), {"instant": _calls(0.002)}, case="freeze")
    assert result.params["freeze_load_start_late_max_s"] == 3.0
    assert "did not keep up with the load** in case freeze" in result.notes[0]


def test_a_streams_only_run_whose_streams_queued_says_so() -> None:
    result = ScenarioResult("slow_task", "t", ())
    quick = {"instant": _calls(0.12, kind="stream")}
    assert not note_overload(result, _loads(0.0), quick)
    assert note_overload(result, _loads(0.0), {"instant": _calls(7.5, kind="stream")})
    assert "the median stream call took 7500 ms" in result.notes[0]
    assert result.params["unary_p50_ms"] is None


def _served(latency: float, n: int, served_by: str, first: int = 0) -> list[Call]:
    return [
        Call("stream", start=float(i), end=float(i) + latency, served_by=served_by)
        for i in range(first, first + n)
    ]


def test_slow_task_judges_the_machine_on_its_fast_agents_streams_only() -> None:
    # A quiet run: the slow agent's streams take ~1.95 s by design and, with the
    # pinned clients sending it every call, are over half of all streams; the
    # fast agents' take 0.12 s. The pooled median (a slow stream) is no sign.
    pinned = _served(1.95, 40, "slow")
    balanced = _served(1.95, 12, "slow") + _served(0.12, 28, "fast", first=12)
    quiet = {"raw": pinned, "seed": pinned, "rr": balanced}
    result = ScenarioResult("slow_task", "t", ())
    assert not note_slow_task_overload(result, _loads(0.0), quiet, "slow")
    assert result.notes == []
    assert result.params["stream_p50_ms"] == 120.0
    # The same mix on a starved machine: the fast agents' streams queued to 1.2 s.
    starved = {"raw": pinned, "rr": _served(1.95, 12, "slow") + _served(1.2, 28, "fast")}
    assert note_slow_task_overload(result, _loads(0.0), starved, "slow")
    assert "the median stream call to a fast agent took 1200 ms" in result.notes[0]
