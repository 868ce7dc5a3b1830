"""Silence detection, pure: who is set aside, when, and who never is."""

from __future__ import annotations

import pytest

from ecsgrpc.balancing.stall import Member, Silence, StallConfig, find_stalled
from ecsgrpc.errors import ConfigError

CONFIG = StallConfig()


def _silence(owed_since: float | None, last_answer: float, usual: float = 0.0) -> Silence:
    s = Silence()
    s.owed_since, s.last_answer, s.usual = owed_since, last_answer, usual
    return s


def _members(*silences: Silence, aside: tuple[bool, ...] = ()) -> list[Member]:
    flags = aside or (False,) * len(silences)
    return [Member(f"e{i}", s, flags[i]) for i, s in enumerate(silences)]


def test_an_endpoint_silent_past_the_limit_while_others_answer_is_set_aside() -> None:
    now = 100.0
    frozen = _silence(owed_since=95.0, last_answer=98.9)  # silent 1.1 s, owing
    busy = _silence(owed_since=None, last_answer=99.95)
    assert find_stalled(_members(frozen, busy, busy), now, CONFIG) == ["e0"]
    assert find_stalled(_members(frozen, busy), 99.8, CONFIG) == []  # 0.9 s: not yet


def test_nothing_is_set_aside_when_every_endpoint_is_silent() -> None:
    # A client pause, a network partition, a fleet-wide slowdown: not one endpoint's fault.
    members = _members(*(_silence(90.0, 95.0) for _ in range(3)))
    assert find_stalled(members, 100.0, CONFIG) == []


def test_the_first_endpoint_back_from_a_fleet_wide_pause_witnesses_against_no_one() -> None:
    fleet = [Silence() for _ in range(3)]
    for s in fleet:
        s.owing(0.0)
        s.answered(0.01, in_flight=1)
    # Every endpoint paused 2.5 s; they come back one after another.
    fleet[0].answered(2.5, in_flight=1)
    fleet[0].answered(2.51, in_flight=1)
    assert fleet[0].resumed == 2.5
    # e1 and e2 are silent 2.8 s, e0 answers: but e0 answered after their silence, not in it.
    assert find_stalled(_members(*fleet), 2.8, CONFIG) == []
    fleet[2].answered(2.9, in_flight=1)
    fleet[0].answered(3.45, in_flight=1)
    assert find_stalled(_members(*fleet), 3.45, CONFIG) == []  # e1: 0.95 s since e0 was back
    # e1 still silent a whole limit after e0 came back (e0 answering since): set aside.
    assert find_stalled(_members(*fleet), 3.55, CONFIG) == ["e1"]


def test_only_a_silence_longer_than_the_floor_or_a_probe_restarts_a_witness() -> None:
    s = Silence()
    s.owing(0.0)
    s.answered(0.9, in_flight=1)  # 0.9 s: an ordinary (slow) answer, not a pause
    assert s.resumed == float("-inf")
    s.answered(2.0, in_flight=0)  # 1.1 s: it was silent itself
    assert s.resumed == 2.0
    s.reset(5.0, in_flight=0)  # answered a probe after being set aside
    assert s.resumed == 5.0


def test_an_endpoint_that_owes_nothing_is_never_silent() -> None:
    idle = _silence(owed_since=None, last_answer=10.0)
    busy = _silence(None, 99.9)
    assert idle.silent_for(100.0) == 0.0
    assert find_stalled(_members(idle, busy), 100.0, CONFIG) == []


def test_a_slow_endpoint_is_judged_by_its_own_usual_silence() -> None:
    slow = Silence()
    t = 0.0
    slow.owing(t)
    for _ in range(150):  # answers every 0.3 s while owing
        t += 0.3
        slow.answered(t, in_flight=1)
    assert slow.limit(CONFIG) == pytest.approx(3.0, rel=0.05)
    others = _silence(None, t + 2.0)
    assert find_stalled(_members(slow, others), t + 2.0, CONFIG) == []
    assert find_stalled(_members(slow, _silence(None, t + 3.5)), t + 3.5, CONFIG) == ["e0"]


def test_client_hiccups_do_not_lift_the_limit() -> None:
    s = Silence()
    s.owing(0.0)
    t = 0.0
    for _ in range(3):
        for _ in range(100):
            t += 0.01
            s.answered(t, in_flight=1)
        t += 3.0  # a 3 s stall of a loaded client: every endpoint looked silent
        s.answered(t, in_flight=1)
    assert s.limit(CONFIG) < 1.5


def test_the_cap_leaves_at_least_half_the_fleet_and_allows_one() -> None:
    frozen = [_silence(90.0, 90.0) for _ in range(3)]
    live = [_silence(None, 99.99) for _ in range(3)]
    found = find_stalled(_members(*frozen, *live), 100.0, CONFIG)
    assert len(found) == 3
    already = _members(*frozen, *live, aside=(True, True, True, False, False, False))
    assert find_stalled(already, 100.0, CONFIG) == []  # 3 of 6 aside: the 50 % cap
    assert find_stalled(_members(frozen[0], live[0]), 100.0, CONFIG) == ["e0"]  # 1 of 2


def test_an_unanswered_attempt_keeps_the_debt_and_a_cancel_forgives_it() -> None:
    s = Silence()
    s.unanswered(5.0)  # a deadline: still owed though nothing is in flight
    assert s.silent_for(7.0) == 2.0
    s.released(in_flight=0)  # the caller gave up on everything: nothing is owed
    assert s.silent_for(9.0) == 0.0


def test_an_excused_stall_raises_the_limit_past_the_silence_seen() -> None:
    s = _silence(owed_since=10.0, last_answer=10.0)
    s.excuse(12.0, in_flight=1, silent=1.5, config=CONFIG)
    assert s.limit(CONFIG) >= 3.0
    assert s.silent_for(12.5) == 0.5  # counted afresh


def test_disabled_detection_sets_nothing_aside_and_bad_settings_are_refused() -> None:
    frozen, live = _silence(0.0, 0.0), _silence(None, 99.9)
    assert find_stalled(_members(frozen, live), 100.0, StallConfig(enabled=False)) == []
    with pytest.raises(ConfigError, match="min_silence_seconds must be > 0, got 0"):
        StallConfig(min_silence_seconds=0)
