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
    clock = Clock()
    limit = AdaptiveLimit(LimitConfig(max_limit=100, initial_limit=32), clock=clock)
    for step in range(400):
        for _ in range(8):
            assert limit.try_acquire()
        limit.observe_lag(0.2)
        clock.now += 0.06
        for _ in range(8):
            limit.release(0.01 * (1 + step % 7))  # latency all over the place
    assert limit.limit == 32


def test_after_a_stall_the_limit_comes_back_to_its_start_under_light_load() -> None:
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
    for _ in range(60):  # then light load at the usual latency
        for _ in range(2):
            assert limit.try_acquire()
        clock.now += 0.06
        for _ in range(2):
            limit.release(0.01)
    assert limit.limit == 32  # back to the start, not above it


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
    # Light load leaves the limit at its start (32); then open loop at 2x: the
    # first windows queue 32 conversations (64 ms against a 2 ms baseline). A
    # smoothed cut took 20-30 windows to the knee, and the queue of those
    # windows set the admitted p99; cut at once, the queue is gone in 6.
    clock = Clock()
    limit = AdaptiveLimit(LimitConfig(max_limit=256, initial_limit=32), clock=clock)
    quiet_start(limit, clock)
    assert limit.limit == 32
    overload(limit, clock, 1, windows=6)
    assert limit.limit <= 8
    # and the cut is not a collapse: the knee holds while the overload lasts
    overload(limit, clock, 1, windows=100)
    assert 4 <= limit.limit <= 8


def test_a_larger_tolerance_settles_at_a_proportionally_larger_limit() -> None:
    # GATEWAY_LATENCY_TOLERANCE: latency may grow to tolerance x baseline before a
    # cut, so on a server whose latency grows linearly past 10 in flight the limit
    # settles near 10 x tolerance.
    settled = {}
    for tolerance in (2.0, 4.0):
        clock = Clock()
        limit = AdaptiveLimit(
            LimitConfig(max_limit=500, initial_limit=200, tolerance=tolerance), clock=clock
        )
        warm(limit, clock)
        drive(limit, clock, server, windows=200)
        settled[tolerance] = limit.limit
    assert 10 <= settled[2.0] <= 40, settled
    assert 25 <= settled[4.0] <= 80, settled
    assert settled[4.0] >= 1.5 * settled[2.0], settled
