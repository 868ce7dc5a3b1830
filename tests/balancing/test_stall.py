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


def _check(silences: list[Silence] | tuple[Silence, ...], now: float, in_flight: int = 1) -> None:
    """The balancer's periodic check (every 0.1 s) over these endpoints."""
    for s in silences:
        s.check(now, in_flight)


def test_answers_are_only_counted_until_the_next_check_stamps_them() -> None:
    s = Silence()
    s.check(0.0, in_flight=1)  # a call is in flight at a check: owed from then
    assert s.owed_since == 0.0
    s.answers += 3  # the call path: a count, no clock
    assert s.silent_for(0.05) == 0.05  # not seen before the next check
    s.check(0.1, in_flight=1)
    assert (s.answers, s.last_answer, s.owed_since) == (0, 0.1, 0.1)
    assert s.silent_for(0.35) == pytest.approx(0.25)
    s.answers += 1
    s.check(0.4, in_flight=0)  # answered, nothing in flight: nothing owed
    assert s.owed_since is None and s.silent_for(5.0) == 0.0
    s.answers += 1  # a call that started and ended between two checks
    s.check(0.5, in_flight=0)
    assert s.owed_since is None and s.last_answer == 0.5


def test_steady_traffic_and_calls_shorter_than_a_check_teach_no_silence() -> None:
    steady, short = Silence(), Silence()
    for k in range(1, 200):
        t = k / 10
        steady.answers += 5  # answers at every check
        steady.check(t, in_flight=1)
        if k % 2:  # a short call in flight at this check, answered before the next
            short.check(t, in_flight=1)
        else:
            short.answers += 1
            short.check(t, in_flight=0)
    assert steady.usual == 0.0 and short.usual == 0.0
    assert steady.limit(CONFIG) == short.limit(CONFIG) == CONFIG.min_silence_seconds


def test_an_attempt_unanswered_after_uncounted_answers_is_owed_from_then() -> None:
    s = Silence()
    s.check(0.0, in_flight=1)
    s.answers += 1  # answered, not checked yet
    s.unanswered(0.05, in_flight=0)  # then a deadline: owed from here on
    assert s.answers == 0 and s.owed_since == 0.05
    s.check(0.1, in_flight=0)  # the check finds nothing new: still owed
    assert s.silent_for(1.05) == pytest.approx(1.0)


def test_the_first_endpoint_back_from_a_fleet_wide_pause_witnesses_against_no_one() -> None:
    fleet = [Silence() for _ in range(3)]
    _check(fleet, 0.0)
    for s in fleet:
        s.answers += 1
    _check(fleet, 0.1)
    # Every endpoint paused 2.4 s; they come back one after another.
    for k in range(2, 25):
        _check(fleet, k / 10)
    for k in range(25, 29):  # e0 is back: it answers at every check from 2.5 s
        fleet[0].answers += 1
        _check(fleet, k / 10)
    assert fleet[0].resumed == 2.5
    # e1 and e2 are silent 2.7 s, e0 answers: but e0 answered after their silence, not in it.
    assert find_stalled(_members(*fleet), 2.8, CONFIG) == []
    fleet[2].answers += 1
    for k in range(29, 35):
        fleet[0].answers += 1
        _check(fleet, k / 10)
    assert find_stalled(_members(*fleet), 3.4, CONFIG) == []  # e1: 0.9 s since e0 was back
    for k in range(35, 37):
        fleet[0].answers += 1
        _check(fleet, k / 10)
    # e1 still silent a whole limit after e0 came back (e0 answering since): set aside.
    assert find_stalled(_members(*fleet), 3.6, CONFIG) == ["e1"]


def test_only_a_silence_longer_than_the_floor_or_a_probe_restarts_a_witness() -> None:
    s = Silence()
    s.check(0.0, in_flight=1)
    s.answers += 1
    s.check(0.9, in_flight=1)  # 0.9 s: an ordinary (slow) answer, not a pause
    assert s.resumed == float("-inf")
    s.answers += 1
    s.check(2.0, in_flight=0)  # 1.1 s: it was silent itself
    assert s.resumed == 2.0
    s.answers += 1
    s.reset(5.0, in_flight=0)  # answered a probe after being set aside
    assert s.resumed == 5.0 and s.answers == 0


def test_an_endpoint_that_owes_nothing_is_never_silent() -> None:
    idle = _silence(owed_since=None, last_answer=10.0)
    busy = _silence(None, 99.9)
    assert idle.silent_for(100.0) == 0.0
    assert find_stalled(_members(idle, busy), 100.0, CONFIG) == []


def test_a_slow_endpoint_is_judged_by_its_own_usual_silence() -> None:
    slow = Silence()
    t = 0.0
    for k in range(1, 451):  # checks every 0.1 s; an answer every 0.3 s while owing
        t = k / 10 + 0.05
        if k % 3 == 0:
            slow.answers += 1
        slow.check(t, in_flight=1)
    # Its gaps are learned as far as certain: 0.3 s less the 0.1 s between checks.
    assert slow.limit(CONFIG) == pytest.approx(2.0, rel=0.05)
    t = slow.last_answer
    assert find_stalled(_members(slow, _silence(None, t + 1.5)), t + 1.5, CONFIG) == []
    assert find_stalled(_members(slow, _silence(None, t + 2.5)), t + 2.5, CONFIG) == ["e0"]


def test_client_hiccups_do_not_lift_the_limit() -> None:
    s = Silence()
    t = 0.0
    s.check(t, in_flight=1)
    for _ in range(3):
        for _ in range(100):  # answers all the time: some at every check
            t += 0.1
            s.answers += 10
            s.check(t, in_flight=1)
        t += 3.0  # a 3 s stall of a loaded client: no check, every endpoint looks silent
        s.answers += 1
        s.check(t, in_flight=1)
        assert s.resumed == t  # not a witness for a while: it looked silent itself
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
    s.unanswered(5.0, in_flight=0)  # a deadline: still owed though nothing is in flight
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
