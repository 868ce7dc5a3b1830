"""Pickers, outlier detection and the retry budget: pure logic, no I/O."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecsgrpc.balancing.outlier import OutlierConfig, OutlierDetector
from ecsgrpc.balancing.picker import (
    LeastRequestPicker,
    Picker,
    RoundRobinPicker,
    ZonePolicy,
    build_picker,
    select_candidates,
)
from ecsgrpc.balancing.retry import RetryBudget, RetryPolicy, backoff_seconds


@dataclass
class Fake:
    key: str
    in_flight: int = 0
    weight: int = 1
    zone: str | None = None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_round_robin_visits_each_in_turn() -> None:
    cands = [Fake("a"), Fake("b"), Fake("c")]
    picker = RoundRobinPicker(cands, start=0)
    assert [picker.pick().key for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]  # type: ignore[union-attr]


def test_round_robin_weights_are_smooth_and_proportional() -> None:
    picker = RoundRobinPicker([Fake("a", weight=3), Fake("b", weight=1)], start=0)
    picks = [picker.pick().key for _ in range(8)]  # type: ignore[union-attr]
    assert Counter(picks) == {"a": 6, "b": 2}
    assert "bb" not in "".join(picks)  # interleaved, not bursts


def test_empty_pickers_return_none() -> None:
    assert RoundRobinPicker([]).pick() is None
    assert LeastRequestPicker([]).pick() is None


def test_least_request_prefers_fewer_in_flight() -> None:
    busy, idle = Fake("busy", in_flight=10), Fake("idle", in_flight=0)
    picker = LeastRequestPicker([busy, idle], rng=random.Random(1))
    assert {picker.pick().key for _ in range(100)} == {"idle"}  # type: ignore[union-attr]


def test_least_request_accounts_for_weight() -> None:
    heavy, light = Fake("heavy", in_flight=4, weight=4), Fake("light", in_flight=2, weight=1)
    picker = LeastRequestPicker([heavy, light], rng=random.Random(2))
    assert picker.pick().key == "heavy"  # type: ignore[union-attr]  # 4/4 < 2/1


def test_pick_any_is_pick_without_exclusions() -> None:
    # pick_any() is the per-call path's pick(()): round robin's turns (one rotation
    # shared with pick()); least request's power of two choices; pick(()) itself
    # for a policy that does not define it.
    rr = RoundRobinPicker([Fake("a"), Fake("b"), Fake("c")], start=1)
    turns = [rr.pick_any(), rr.pick(), rr.pick_any(), rr.pick(("a",))]
    assert [c.key for c in turns if c is not None] == ["b", "c", "a", "b"]
    assert RoundRobinPicker([]).pick_any() is None
    assert LeastRequestPicker([]).pick_any() is None
    assert LeastRequestPicker([Fake("only")]).pick_any().key == "only"  # type: ignore[union-attr]

    # Equal weights, 2-64 candidates: every ordered pair of two distinct candidates
    # once per turn of n(n-1) picks, the one with fewer calls in flight taken
    # (the pair's first on a tie). Turns repeat; the order is shuffled per picker.
    cands = [Fake(k, in_flight=load) for k, load in zip("vwxyz", (3, 0, 3, 1, 5))]
    picker = LeastRequestPicker(cands, rng=random.Random(7))
    pairs = [(a, b) for a in cands for b in cands if a is not b]
    expected = Counter((a if a.in_flight <= b.in_flight else b).key for a, b in pairs)
    for _ in range(3):
        picks = Counter(picker.pick_any().key for _ in pairs)  # type: ignore[union-attr]
        assert picks == expected
    assert LeastRequestPicker(cands, rng=random.Random(8)).pick_any() is not None
    # Other weights, or more candidates than the pair table holds: pick(()).
    many = [Fake(f"m{i}", in_flight=i % 5) for i in range(70)]
    weighted = [
        Fake(k, in_flight=i * 3, weight=w) for i, (k, w) in enumerate(zip("xyz", (3, 1, 2)))
    ]
    for group in (weighted, many):
        one = LeastRequestPicker(group, rng=random.Random(7))
        other = LeastRequestPicker(group, rng=random.Random(7))
        for _ in range(200):
            assert one.pick_any() is other.pick(())
    for size in (2, 70):  # idle: every candidate gets its share
        idle = LeastRequestPicker([Fake(f"i{n}") for n in range(size)], rng=random.Random(5))
        spread = Counter(idle.pick_any().key for _ in range(100 * size))  # type: ignore[union-attr]
        assert len(spread) == size and max(spread.values()) / min(spread.values()) < 2

    class LastPicker(Picker[Fake]):
        def pick(self, exclude: Collection[str] = ()) -> Fake | None:
            return self.candidates[-1] if self.candidates else None

    assert LastPicker([Fake("p"), Fake("q")]).pick_any().key == "q"  # type: ignore[union-attr]


def test_least_request_spreads_evenly_when_idle() -> None:
    cands = [Fake(k) for k in "abcd"]
    picker = LeastRequestPicker(cands, rng=random.Random(3))
    counts = Counter(picker.pick().key for _ in range(8000))  # type: ignore[union-attr]
    assert max(counts.values()) / min(counts.values()) < 1.15


@given(
    n=st.integers(1, 8),
    excluded=st.sets(st.integers(0, 7)),
    policy=st.sampled_from(["round_robin", "least_request"]),
)
def test_pick_avoids_excluded_endpoints_while_others_remain(
    n: int, excluded: set[int], policy: str
) -> None:
    cands = [Fake(str(i), in_flight=i % 3) for i in range(n)]
    exclude = {str(i) for i in excluded}
    chosen = build_picker(policy, cands).pick(exclude)
    assert chosen is not None
    if any(c.key not in exclude for c in cands):
        assert chosen.key not in exclude


def test_zone_preference_keeps_traffic_in_zone_only_with_enough_capacity() -> None:
    a1, a2, b1 = Fake("a1", zone="az-a"), Fake("a2", zone="az-a"), Fake("b1", zone="az-b")
    policy = ZonePolicy("az-a", min_ready=2, min_fraction=0.5)
    assert select_candidates([a1, a2, b1], policy, zone_total=2) == (a1, a2)
    # Only one ready in zone: spread over every zone.
    assert select_candidates([a1, b1], policy, zone_total=2) == (a1, b1)
    # Two ready but the zone has 6 endpoints (most failing): spread.
    assert select_candidates([a1, a2, b1], policy, zone_total=6) == (a1, a2, b1)
    # Unknown caller zone: everything.
    assert select_candidates([a1, a2, b1], ZonePolicy(None), zone_total=0) == (a1, a2, b1)


def test_outlier_ejects_after_consecutive_failures_and_backs_off() -> None:
    clock = Clock()
    det = OutlierDetector(
        OutlierConfig(consecutive_failures=3, base_ejection_seconds=10), clock=clock
    )
    det.track(["a", "b", "c", "d"])
    assert not det.failure("a") and not det.failure("a")
    det.success("a")  # a success resets the count
    assert not det.failure("a") and not det.failure("a")
    assert det.failure("a") and det.is_ejected("a")
    clock.now += 9.9
    assert det.release_expired() == []
    clock.now += 0.2
    assert det.release_expired() == ["a"]
    for _ in range(3):
        det.failure("a")
    assert det.is_ejected("a")
    assert det.next_release() == pytest.approx(clock.now + 20)  # second time: 2 x base


def test_outlier_caps_the_ejected_share_but_allows_one() -> None:
    det = OutlierDetector(OutlierConfig(consecutive_failures=1, max_ejection_percent=50))
    det.track(["a", "b", "c"])
    assert det.failure("a")  # one may always go
    assert not det.failure("b")  # 2 of 3 > 50 %
    assert not det.is_ejected("b")


def test_retry_policy_only_retries_unprocessed_failures() -> None:
    policy = RetryPolicy()
    assert policy.retryable(grpc.StatusCode.UNAVAILABLE, idempotent=False)
    for code in (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INVALID_ARGUMENT,
    ):
        assert not policy.retryable(code, idempotent=False)
    assert policy.retryable(grpc.StatusCode.RESOURCE_EXHAUSTED, idempotent=True)
    assert not policy.retryable(grpc.StatusCode.DEADLINE_EXCEEDED, idempotent=True)


def test_backoff_has_jitter_and_a_ceiling() -> None:
    policy = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, multiplier=2)
    assert backoff_seconds(policy, 2, lambda: 1.0) == pytest.approx(0.01)
    assert backoff_seconds(policy, 3, lambda: 1.0) == pytest.approx(0.02)
    assert backoff_seconds(policy, 9, lambda: 1.0) == pytest.approx(0.05)
    assert backoff_seconds(policy, 2, lambda: 0.5) == pytest.approx(0.005)


def test_retry_budget_is_a_ratio_plus_a_floor() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.2, min_per_second=1, window_seconds=10, clock=clock)
    for _ in range(100):
        budget.record_calls(1)
    granted = sum(budget.try_spend() for _ in range(100))
    assert granted == 10 + 20  # floor (1/s x 10 s) + 20 % of 100 calls
    clock.now += 11  # the window slides: old calls and retries are forgotten
    assert sum(budget.try_spend() for _ in range(100)) == 10
