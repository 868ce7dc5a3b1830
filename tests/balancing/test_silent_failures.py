"""Silent failures with real faults: a frozen agent (SIGSTOP) and a black-holed one
(iptables DROP on one loopback address and port), under open-loop load.

Goals (both policies): no new call goes to the silent agent later than 2 s
after the fault; the only failed calls are those in flight on it at the fault
or started in its first 2 s; after the fault ends it serves again within 5 s,
and no call started after that fails. No false alarms: a 20x slower agent is
never set aside, and a fleet that is silent as a whole sets nothing aside.
Black holes use only 127.0.12.0/24 and are removed whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from ecsgrpc.balancing.channel import BalancedChannel
from ecsgrpc.endpoints import Endpoint
from ecsgrpc.testing import ManualResolver
from ecsgrpc_apps.local.blackhole import BlackHole, iptables_missing, remove_leftover_rules
from tests.support.agents import AgentProcess, wait_until
from tests.support.load import Outcome
from tests.support.paced import PacedLoad

pytestmark = pytest.mark.timeout(120)

HOSTS = ("127.0.12.1", "127.0.12.2", "127.0.12.3")
FAULT_SECONDS = 4.0


@pytest.fixture(scope="session")
def iptables() -> Iterator[None]:
    """Skip without iptables; remove any rule a killed run left, before and after."""
    reason = iptables_missing()
    if reason is not None:
        pytest.skip(reason)
    remove_leftover_rules()
    yield
    remove_leftover_rules()


def _channel(
    procs: list[AgentProcess], policy: str, registry: CollectorRegistry
) -> BalancedChannel:
    endpoints = [Endpoint(p.host, p.port, {"instance_id": p.instance_id}) for p in procs]
    return BalancedChannel(
        ManualResolver(endpoints),
        target="silent",
        policy=policy,
        registry=registry,
        detect_ecs_zone=False,
    )


def _stalls(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("ecsgrpc_endpoint_stalls_total", {"target": "silent"}) or 0.0


@contextlib.contextmanager
def _frozen(agent: AgentProcess) -> Iterator[None]:
    os.kill(agent.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(agent.pid, signal.SIGCONT)


class _Watch:
    """Samples whether the victim is pickable, every 20 ms."""

    def __init__(self, channel: BalancedChannel, address: str) -> None:
        self.samples: list[tuple[float, bool]] = []
        self._channel = channel
        self._address = address
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            status = {s.address: s.pickable for s in self._channel.endpoints()}
            self.samples.append((time.monotonic(), status[self._address]))
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def first(self, pickable: bool, after: float) -> float | None:
        return next((t for t, p in self.samples if t >= after and p is pickable), None)


def _describe(outcomes: list[Outcome], t0: float) -> str:
    failed = [o for o in outcomes if o.error]
    return ", ".join(f"{o.kind}@{o.started - t0:+.2f}s:{o.error}" for o in failed[:20])


@pytest.mark.parametrize("policy", ["least_request", "round_robin"])
@pytest.mark.parametrize("fault", ["sigstop", "black_hole"])
async def test_a_silent_agent_costs_only_the_calls_already_on_it(
    agents: Callable[..., AgentProcess],
    iptables: None,
    fault: str,
    policy: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ecsgrpc.balancing.balancer")
    procs = [agents(h, args=("--event-delay", "0.005")) for h in HOSTS]
    victim = procs[0]
    registry = CollectorRegistry()
    async with _channel(procs, policy, registry) as ch:
        await ch.channel_ready(timeout=15, min_ready=3)
        watch = _Watch(ch, victim.address)
        async with PacedLoad(ch, rate=100) as load:
            await asyncio.sleep(1.5)
            hole = BlackHole(victim.host, victim.port)
            t_fault = time.monotonic()
            with _frozen(victim) if fault == "sigstop" else hole:
                await asyncio.sleep(FAULT_SECONDS)
                t_back = time.monotonic()
            await wait_until(lambda: ch.endpoints()[0].pickable, 6)
            await asyncio.sleep(2.0)
        outcomes = load.outcomes
        await watch.stop()
    set_aside = watch.first(False, t_fault)
    returned = watch.first(True, t_back)
    detail = _describe(outcomes, t_fault)
    # Set aside within 2 s of the fault, and back within 5 s of its end.
    assert set_aside is not None and set_aside - t_fault <= 2.0, (set_aside, detail)
    assert returned is not None and returned - t_back <= 5.0, (returned, t_back)
    # No call started 2 s into the fault went to the victim (none failed, none served by it).
    late = [
        o
        for o in outcomes
        if t_fault + 2.0 <= o.started < t_back and (o.error or o.served_by == victim.instance_id)
    ]
    assert not late, detail
    # Failed calls: only those in flight at the fault or started in its first 2 s.
    assert all(o.started < t_fault + 2.0 for o in outcomes if o.error), detail
    # No burst of failures on recovery, and the victim serves again.
    after = [o for o in outcomes if o.started >= t_back]
    assert not [o for o in after if o.error], detail
    assert any(o.served_by == victim.instance_id for o in after if o.started <= t_back + 5.0)
    assert _stalls(registry) >= 1
    # While silent for more than 2 s it got fresh connections (the old one, black-holed,
    # would only resume at TCP's next backed-off retransmission).
    assert "still silent: opening a fresh connection" in caplog.text


async def test_an_agent_black_holed_from_the_start_fails_no_call_and_delays_none(
    agents: Callable[..., AgentProcess], iptables: None
) -> None:
    procs = [agents(h, args=("--event-delay", "0.005")) for h in HOSTS]
    victim = procs[0]
    with BlackHole(victim.host, victim.port):
        async with _channel(procs, "least_request", CollectorRegistry()) as ch:
            await ch.channel_ready(timeout=15, min_ready=2)
            async with PacedLoad(ch, rate=100) as load:
                await asyncio.sleep(3.0)
            outcomes = load.outcomes
            assert not ch.endpoints()[0].pickable
    assert outcomes and not [o for o in outcomes if o.error], _describe(outcomes, 0)
    unary = [o.finished - o.started for o in outcomes if o.kind == "unary"]
    assert max(unary) < 1.0  # no call waited on the unreachable agent
    assert not [o for o in outcomes if o.served_by == victim.instance_id]


async def test_a_20x_slower_agent_is_never_set_aside(
    agents: Callable[..., AgentProcess],
) -> None:
    delays = ("0.1", "0.005", "0.005")
    procs = [agents(h, args=("--event-delay", d)) for h, d in zip(HOSTS, delays, strict=True)]
    registry = CollectorRegistry()
    async with _channel(procs, "least_request", registry) as ch:
        await ch.channel_ready(timeout=15, min_ready=3)
        watch = _Watch(ch, procs[0].address)
        # Streams only: 5 events, 0.1 s apart on the slow agent (5 ms on the others).
        async with PacedLoad(ch, rate=20, stream_every=1) as load:
            await asyncio.sleep(6.0)
        await watch.stop()
    assert _stalls(registry) == 0
    assert all(p for _, p in watch.samples)
    served = [o for o in load.outcomes if o.served_by == procs[0].instance_id and not o.error]
    assert served  # it keeps a (small) least_request share


async def test_a_fleet_silent_as_a_whole_sets_nothing_aside(
    agents: Callable[..., AgentProcess],
) -> None:
    procs = [agents(h, args=("--event-delay", "0.005")) for h in HOSTS]
    registry = CollectorRegistry()
    async with _channel(procs, "least_request", registry) as ch:
        await ch.channel_ready(timeout=15, min_ready=3)
        async with PacedLoad(ch, rate=50, unary_timeout=5.0) as load:
            await asyncio.sleep(1.0)
            with contextlib.ExitStack() as stack:
                for p in procs:
                    stack.enter_context(_frozen(p))
                await asyncio.sleep(2.5)
            t_back = time.monotonic()
            await asyncio.sleep(1.5)
        assert ch.ready_count == 3
    assert _stalls(registry) == 0
    # Everything that waited through the pause is answered after it.
    assert not [o for o in load.outcomes if o.error], _describe(load.outcomes, t_back)


# Longer than the 0.1 s check interval (so the old rule, "another endpoint answered
# within the limit", saw the first agent back witness against the others at a check
# or more), and the whole resumption (2 x 0.3 s) well within the 1 s limit.
RESUME_GAP = 0.3


@pytest.mark.parametrize("calls", ["unary", "stream"])
async def test_a_fleet_resuming_one_task_at_a_time_sets_nothing_aside(
    agents: Callable[..., AgentProcess], calls: str
) -> None:
    # A fleet-wide pause ends task by task (a loaded host schedules them one after
    # another): the first back is no witness against those still waking up, since it
    # was silent too for most of their silence. Unary calls only (answers counted in
    # Balancer.done) or streams only (their messages, counted in calls.py, come first).
    procs = [agents(h, args=("--event-delay", "0.005")) for h in HOSTS]
    registry = CollectorRegistry()
    every = 1 if calls == "stream" else 10**9
    async with _channel(procs, "least_request", registry) as ch:
        await ch.channel_ready(timeout=15, min_ready=3)
        load = PacedLoad(ch, rate=50, stream_every=every, unary_timeout=5.0)
        async with load:
            await asyncio.sleep(1.0)
            for p in procs:
                os.kill(p.pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(2.5)
                for p in procs[:-1]:
                    os.kill(p.pid, signal.SIGCONT)
                    await asyncio.sleep(RESUME_GAP)
            finally:
                for p in procs:
                    os.kill(p.pid, signal.SIGCONT)
            t_back = time.monotonic()
            await asyncio.sleep(1.5)
        assert ch.ready_count == 3
    assert _stalls(registry) == 0, _describe(load.outcomes, t_back)
    assert not [o for o in load.outcomes if o.error], _describe(load.outcomes, t_back)
    assert {o.served_by for o in load.outcomes} == {p.instance_id for p in procs}
