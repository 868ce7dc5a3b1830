"""The adaptive concurrency limit, as plain arithmetic on a fake clock."""

from __future__ import annotations

import pytest

from ecsgrpc_apps.gateway.limiter import AdaptiveLimit, LimitConfig


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drive(limit: AdaptiveLimit, clock: Clock, latency_at: object, windows: int) -> None:
    """Fill the limit and complete each admitted one with ``latency_at(in_flight)``."""
    for _ in range(windows):
        admitted = 0
        while limit.try_acquire():
            admitted += 1
        in_flight = limit.in_flight
        clock.now += 0.06
        for _ in range(admitted):
            limit.release(latency_at(in_flight))  # type: ignore[operator]


def test_the_limit_refuses_above_it_and_admits_again_after_a_release() -> None:
    limit = AdaptiveLimit(LimitConfig(max_limit=3, min_limit=1, adaptive=False))
    assert [limit.try_acquire() for _ in range(4)] == [True, True, True, False]
    limit.release(0.01)
    assert limit.try_acquire()


def server(n: int) -> float:
    """A server of 10 slots and 10 ms: beyond 10 in flight, latency grows linearly."""
    return 0.01 * max(1.0, n / 10)


def warm(limit: AdaptiveLimit, clock: Clock) -> None:
    """A quiet start: a few conversations at a time."""
    for _ in range(20):
        for _ in range(8):
            assert limit.try_acquire()
        clock.now += 0.06
        for _ in range(8):
            limit.release(server(8))


def test_latency_that_grows_with_concurrency_shrinks_the_limit_to_the_knee() -> None:
    clock = Clock()
    limit = AdaptiveLimit(LimitConfig(max_limit=500, initial_limit=200), clock=clock)
    warm(limit, clock)
    drive(limit, clock, server, windows=200)
    assert 10 <= limit.limit <= 40
    assert limit.baseline == pytest.approx(0.01, rel=0.3)


def test_flat_latency_lets_the_limit_grow_to_the_ceiling() -> None:
    clock = Clock()
    limit = AdaptiveLimit(LimitConfig(max_limit=300, initial_limit=8), clock=clock)
    drive(limit, clock, lambda n: 0.02, windows=400)
    assert limit.limit == 300


def test_sustained_overload_does_not_ratchet_the_baseline_up() -> None:
    clock = Clock()
    limit = AdaptiveLimit(LimitConfig(max_limit=500, initial_limit=100), clock=clock)
    warm(limit, clock)
    drive(limit, clock, server, windows=2000)
    assert limit.baseline == pytest.approx(0.01, rel=0.3)
    assert limit.limit <= 40


def test_a_slower_agent_is_learnt_when_not_saturated() -> None:
    clock = Clock()
    limit = AdaptiveLimit(LimitConfig(max_limit=100, initial_limit=100), clock=clock)
    for latency in (0.01, 0.05):
        for _ in range(300):  # 2 in flight: far from the limit
            assert limit.try_acquire() and limit.try_acquire()
            clock.now += 0.03
            limit.release(latency)
            limit.release(latency)
    assert limit.baseline == pytest.approx(0.05, rel=0.2)


def test_samples_without_latency_release_but_teach_nothing() -> None:
    limit = AdaptiveLimit(LimitConfig(max_limit=10, initial_limit=10))
    for _ in range(100):
        assert limit.try_acquire()
        limit.release(None)
    assert limit.in_flight == 0
    assert limit.baseline is None
    assert limit.limit == 10


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ValueError, match="min_limit 5 must be between 1 and max_limit 2"):
        LimitConfig(max_limit=2, min_limit=5)


def test_overload_from_the_first_moment_is_shed_by_the_loop_lag() -> None:
    # No quiet start: the first window is already queued (baseline too high);
    # the event loop's lag cuts the limit, and the gradient then learns.
    clock = Clock()
    limit = AdaptiveLimit(LimitConfig(max_limit=500, initial_limit=200), clock=clock)
    for _ in range(300):
        while limit.try_acquire():
            pass
        limit.observe_lag(0.3 if limit.in_flight > 20 else 0.0)  # saturated: a real signal
        in_flight = limit.in_flight
        clock.now += 0.06
        for _ in range(in_flight):
            limit.release(server(in_flight))
    assert limit.limit <= 40
    assert limit.baseline is not None and limit.baseline <= 0.03


def test_a_small_lag_changes_nothing() -> None:
    limit = AdaptiveLimit(LimitConfig(max_limit=100, initial_limit=50))
    while limit.try_acquire():
        pass
    limit.observe_lag(0.05)
    assert limit.limit == 50


def test_lag_or_slowness_with_the_limit_barely_used_refuses_nothing_more() -> None:
    # 8 in flight under a limit of 32: a busy machine or a slow agent, not our queue.
    # The limit drifts toward what is used (3 x 8 + 1), never into refusing it.
    clock = Clock()
    limit = AdaptiveLimit(LimitConfig(max_limit=100, initial_limit=32), clock=clock)
    for step in range(400):
        for _ in range(8):
            assert limit.try_acquire()
        limit.observe_lag(0.2)
        clock.now += 0.06
        for _ in range(8):
            limit.release(0.01 * (1 + step % 7))  # latency all over the place
    assert limit.limit == 25


def bursts(
    limit: AdaptiveLimit, clock: Clock, size: int, windows: int, latency: float
) -> list[int]:
    """``size`` conversations at once every window at ``latency``; refusals per window."""
    refused = []
    for _ in range(windows):
        admitted = sum(limit.try_acquire() for _ in range(size))
        clock.now += 0.06
        for _ in range(admitted):
            limit.release(latency)
        refused.append(size - admitted)
    return refused


def test_a_limit_cut_by_a_stall_recovers_and_never_refuses_light_load() -> None:
    """A stall cuts the limit; light load then brings it back to the light floor (10)
    refusing nothing, and load that needs more (12 at once, at the usual latency)
    gets it back within 20 windows.

    (This test once required the limit to return to its start, 32, under light load.
    Light load now brings any unused limit down toward what it uses, 3 x its recent
    peak + 1 and at least 10, so that a step up in load does not find 32 free
    places: a stall-cut limit comes back to that instead. What it protects is
    unchanged: a stall-cut limit does not stay low, refusing load it used to admit;
    both parts fail for a limit that never comes back up.)
    """
    clock = Clock()
    limit = AdaptiveLimit(LimitConfig(max_limit=100, initial_limit=32), clock=clock)
    warm(limit, clock)
    for _ in range(20):  # a stall: the limit full, the loop late
        while limit.try_acquire():
            pass
        limit.observe_lag(0.5)
        clock.now += 0.06
        for _ in range(limit.in_flight):
            limit.release(0.2)
    assert limit.limit <= 8
    assert bursts(limit, clock, 2, windows=120, latency=0.01) == [0] * 120
    assert limit.limit == 10
    refused = bursts(limit, clock, 12, windows=40, latency=0.01)
    assert refused[-20:] == [0] * 20, refused
    assert limit.limit >= 12


def test_light_load_brings_an_unused_limit_down_toward_what_it_uses() -> None:
    # At its start (32) and 3 at a time: the limit comes down toward 3 x 3 + 1,
    # refusing none of them, so open-loop overload that follows meets about 10
    # free places, not 32 (32 at once queued 16-49 ms against a 1.8 ms baseline).
    clock = Clock()
    limit = AdaptiveLimit(LimitConfig(max_limit=256, initial_limit=32), clock=clock)
    assert bursts(limit, clock, 3, windows=100, latency=cpu_bound(3)) == [0] * 100
    assert limit.limit == 10
    admitted = 0
    while limit.try_acquire():
        admitted += 1
    assert admitted == 10
    for _ in range(admitted):
        limit.release(None)
    # One at a time: 3 x 1 + 1 would be 4; the light floor keeps 10 (a stall of
    # a few tens of ms gathers that many at once even at light load).
    assert bursts(limit, clock, 1, windows=800, latency=cpu_bound(1)) == [0] * 800
    assert limit.limit == 10


def test_light_load_never_raises_the_limit_past_its_start() -> None:
    # 12 at a time under a start of 32: less than half used; room for them would
    # be 3 x 12 + 1 = 37, but light load alone says nothing about more than 32.
    clock = Clock()
    limit = AdaptiveLimit(LimitConfig(max_limit=256, initial_limit=32), clock=clock)
    assert bursts(limit, clock, 12, windows=100, latency=0.01) == [0] * 100
    assert limit.limit == 32


def cpu_bound(n: int) -> float:
    """One core, 2 ms of it per conversation: latency is the number in flight."""
    return 0.002 * n


def overload(limit: AdaptiveLimit, clock: Clock, refused_per_admitted: float, windows: int) -> None:
    """Open loop past capacity: the limit full, ``refused_per_admitted`` refusals per admission."""
    for _ in range(windows):
        admitted = 0
        while limit.try_acquire():
            admitted += 1
        for _ in range(int(refused_per_admitted * admitted) - 1):
            limit.refused()  # at the door: the refused ones do not come back
        clock.now += 0.06
        for _ in range(admitted):
            limit.release(cpu_bound(admitted))


def storm(limit: AdaptiveLimit, clock: Clock, clients: int, windows: int) -> list[int]:
    """``clients`` that re-send a refused request at once (100 times a window); limits seen."""
    seen = []
    for _ in range(windows):
        admitted = 0
        while admitted < clients and limit.try_acquire():
            admitted += 1
        for _ in range(100 * (clients - admitted)):
            limit.refused()
        clock.now += 0.06
        for _ in range(admitted):
            limit.release(cpu_bound(admitted))
        seen.append(limit.limit)
    return seen


def quiet_start(limit: AdaptiveLimit, clock: Clock) -> None:
    for _ in range(20):
        assert limit.try_acquire()
        clock.now += 0.06
        limit.release(cpu_bound(1))


@pytest.mark.parametrize("refused_per_admitted", [0.5, 1.0, 3.0])
def test_open_loop_overload_still_shrinks_the_limit(refused_per_admitted: float) -> None:
    # At 1.5x, 2x and 4x of capacity (half a refusal, one, three per admission)
    # the refused do not come back: the gradient sheds them as before.
    clock = Clock()
    limit = AdaptiveLimit(LimitConfig(max_limit=256, initial_limit=32), clock=clock)
    quiet_start(limit, clock)
    overload(limit, clock, refused_per_admitted, windows=100)
    assert limit.limit <= 8


def test_clients_that_resend_at_once_after_overload_get_the_limit_back() -> None:
    clock = Clock()
    limit = AdaptiveLimit(LimitConfig(max_limit=256, initial_limit=32), clock=clock)
    quiet_start(limit, clock)
    overload(limit, clock, 1, windows=100)
    assert limit.limit <= 8
    # 12 clients that re-send a 503 at once: refusing them sheds nothing.
    seen = storm(limit, clock, clients=12, windows=100)
    assert min(seen[20:]) >= 12  # every one of them held, and kept
    assert limit.limit <= 32  # not above the start


def test_more_clients_than_the_start_are_held_at_the_start() -> None:
    clock = Clock()
    limit = AdaptiveLimit(LimitConfig(max_limit=256, initial_limit=32), clock=clock)
    quiet_start(limit, clock)
    overload(limit, clock, 1, windows=100)
    assert storm(limit, clock, clients=100, windows=100)[-1] == 32


def test_overload_that_meets_the_starting_limit_is_cut_to_the_knee_within_a_few_windows() -> None:
    # One quiet window (a baseline), the limit still near its start (32); then
    # open loop at 2x: the first windows queue that many conversations (64 ms
    # against a 2 ms baseline). A smoothed cut took 20-30 windows to the knee,
    # and the queue of those windows set the admitted p99; cut at once, the
    # queue is gone in 6.
    clock = Clock()
    limit = AdaptiveLimit(LimitConfig(max_limit=256, initial_limit=32), clock=clock)
    for _ in range(8):
        assert limit.try_acquire()
        clock.now += 0.01
        limit.release(cpu_bound(1))
    assert limit.limit >= 24
    overload(limit, clock, 1, windows=6)
    assert limit.limit <= 8
    # and the cut is not a collapse: the knee holds while the overload lasts
    overload(limit, clock, 1, windows=100)
    assert 4 <= limit.limit <= 8
