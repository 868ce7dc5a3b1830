"""Silence detection: an endpoint that owes answers and stays silent while others answer.

A frozen task (CPU starvation, a long GC pause, a stopped process) or a
black-holed one (its ENI gone, packets dropped without a reset) keeps its
connection READY and its health Watch silent: neither grpc's connectivity nor
``grpc.health.v1`` says anything for as long as TCP keeps the connection (20 s
and more). What does change at once is that the endpoint stops answering. This
module turns that into a decision, free of I/O (the balancer does the I/O):

* Each endpoint keeps a :class:`Silence`: since when it *owes* an answer (it
  has attempts in flight, or attempts that ended without one: a deadline, a
  connection error), when it last *answered* (a response message or a status
  the server sent), and how long its silences usually last while it owes
  something (an EWMA that rises fast and decays slowly).
* The call path only counts: an answer adds 1 to :attr:`Silence.answers`
  (no clock read per call or per message). The balancer's check, every
  ``check_interval_seconds`` (0.1 s), calls :meth:`Silence.check` for every
  endpoint: it stamps the answers counted since the previous check with the
  check's time and notes calls in flight as owed from then (calls that start
  and end between two checks owe nothing). Silence is therefore measured to
  one check interval, always in the endpoint's favour (answers are stamped
  late, never early): against the 1 s floor a frozen endpoint is set aside
  at most one interval later than if every answer read the clock.
* :func:`find_stalled` names the endpoints whose current silence is longer
  than ``max(min_silence_seconds, silence_multiple x usual)`` **while another
  endpoint answered throughout that time** (failure accrual relative to the
  fleet, as Envoy's and Finagle's are: when every endpoint is silent the cause
  is the client, the network or a fleet-wide slowdown, and ejecting would only
  lose capacity), and never more than ``max_stalled_percent`` of the endpoints
  (with outlier ejections; at least one may always be set aside).
* The witness: another endpoint, not set aside, that answered within the
  suspect's limit and was not itself silent for longer than its floor
  (``min_silence_seconds``, more once excused) at any time in it: its
  :attr:`Silence.resumed`, the answer that ended its last such silence, is
  older than the limit. A fleet-wide pause ends endpoint by endpoint (a loaded
  host or a client's event loop gets to them one after another): the first
  one back answered *after* the others' silence, not during it, and witnesses
  against nobody until the others have stayed silent a whole limit longer.
  A single frozen endpoint among answering ones is set aside as soon as its
  silence passes its limit (its witnesses answered all along).

A stalled endpoint takes no new calls; its calls in flight are left alone
(they may still finish: a pause ends). The balancer probes it
(``grpc.health.v1`` Check, ``probe_timeout_seconds``) every
``probe_interval_seconds``; the first answer returns it to the picker. When a
stall lasts ``reconnect_after_seconds`` the balancer also opens a fresh
connection to it (and again every ``reconnect_after_seconds`` while it stays
silent): after a black hole ends, the old connection only resumes at TCP's
next retransmission, which backs off exponentially (on Linux, ~10 s after a
15 s outage), while a new connection's SYN goes out at once.

Why these defaults (docs/architecture.md, "Silent failures"):

* ``min_silence_seconds = 1.0``: the goal is no new call to a silent task
  later than 2 s after it goes silent; 1 s of silence, up to 0.1 s of
  stamping its last answer late and a check every 0.1 s (set aside 1.0-1.2 s
  after its last answer) leave room for a loaded client's event loop. Ordinary calls on a
  healthy task answer in milliseconds, and a 20x slower task (100 ms between
  stream events) stays far below it.
* ``silence_multiple = 10``: an endpoint whose usual silences are long
  (streams with long pauses, slow methods) is judged by its own history, so
  a task that is merely slow is never set aside; 10x its usual is well past
  a normal tail. The usual silence learns slowly (once per check that
  counted answers), counts a gap only up to the floor (or what an excused
  stall taught it) and only as far as it is certain: from the start of the
  silence to the check before the one that counted its end. Steady traffic
  (answers at every check) and calls shorter than a check teach no silence,
  and a loaded client's own event-loop stall, which makes every endpoint look
  silent and delays the checks too, teaches none either. The price: a slow
  endpoint's gaps are learned one check (0.1 s) short, so its limit is up to
  ``silence_multiple x 0.1 s`` (1 s) lower than 10x its gaps; a false stall
  of such an endpoint is excused at its first probe (below).
* A false stall costs little: the endpoint is set aside only until it answers
  one probe (a few milliseconds when it is alive), and no call is cancelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DECAY", "RISE", "Member", "Silence", "StallConfig", "find_stalled"]


@dataclass(frozen=True, slots=True)
class StallConfig:
    """Silence detection settings (see the module docstring for the why of each default)."""

    enabled: bool = True
    min_silence_seconds: float = 1.0
    silence_multiple: float = 10.0
    check_interval_seconds: float = 0.1
    probe_timeout_seconds: float = 1.0
    probe_interval_seconds: float = 0.25
    reconnect_after_seconds: float = 2.0
    max_stalled_percent: float = 50.0

    def __post_init__(self) -> None:
        for name in (
            "min_silence_seconds",
            "silence_multiple",
            "check_interval_seconds",
            "probe_timeout_seconds",
            "probe_interval_seconds",
            "reconnect_after_seconds",
        ):
            value = getattr(self, name)
            if not value > 0:
                from ecsgrpc.errors import ConfigError

                raise ConfigError(f"StallConfig.{name} must be > 0, got {value!r}")


# The usual silence moves 5 % of the way toward a longer gap and 2 % toward a
# shorter one per check that counted answers, and a gap counts at most up to
# the floor: a loaded client's event-loop stall (every endpoint looks silent
# for a moment) must not lift the limit, so one 1 s hiccup moves it by at most
# 0.05 s. Gaps longer than the limit are learned through :meth:`Silence.excuse`
# instead (the endpoint was set aside, answered its probe at once, so it is slow).
RISE = 0.05
DECAY = 0.02


class Silence:
    """One endpoint's answer bookkeeping.

    The call path only counts: each answer (a response message, a status of the
    server's own) adds 1 to :attr:`answers`, no clock read. The balancer's
    periodic check calls :meth:`check`, which turns the count into times (the
    answers are stamped with the check's time) and notes calls in flight as owed.
    """

    __slots__ = ("answers", "cap", "checked", "last_answer", "owed_since", "resumed", "usual")

    def __init__(self, cap: float = 1.0) -> None:
        self.answers = 0  # answers since the last check (the call path's one write)
        self.owed_since: float | None = None  # start of the current unanswered demand
        self.last_answer = 0.0
        self.checked = float("-inf")  # the last check (answers counted now came after it)
        self.usual = 0.0
        self.cap = cap  # the longest gap counted (the limit's floor)
        # The check that counted the answer ending its last silence longer than
        # ``cap`` (or a probe's answer): no witness for anything before it.
        # -inf: never silent that long.
        self.resumed = float("-inf")

    def check(self, now: float, in_flight: int) -> None:
        """A periodic check at ``now`` with ``in_flight`` calls on the endpoint.

        Answers counted since the last check are taken as given at ``now`` (late by
        at most one check interval: a silence is measured to that granularity). The
        gap they end counts toward the usual silence only as far as it is certain:
        from the start of the silence to the previous check, which saw no answer
        yet. Answers at two checks in a row (steady traffic) are no silence, and a
        client stall between two checks (every endpoint looks silent) teaches
        nothing. A silence longer than ``cap`` at most (the gap up to ``now``) marks
        :attr:`resumed`: that errs toward fewer witnesses, never toward more.
        Calls in flight with nothing owed yet are owed from ``now``.
        """
        if self.answers:
            self.answers = 0
            start = self.owed_since
            if start is not None:
                last = self.last_answer
                begun = start if start > last else last
                if now - begun > self.cap:
                    self.resumed = now  # a long silence ends
                gap = self.checked - begun  # the silence known for certain
                if gap < 0.0:
                    gap = 0.0
                elif gap > self.cap:
                    gap = self.cap
                usual = self.usual
                self.usual = usual + (RISE if gap > usual else DECAY) * (gap - usual)
            self.last_answer = now
            self.owed_since = now if in_flight else None
        elif in_flight and self.owed_since is None:
            self.owed_since = now
        self.checked = now

    def unanswered(self, now: float, in_flight: int) -> None:
        """An attempt ended without an answer (deadline, connection error): still owed.
        (Answers counted before it are checked first, at ``now``.)"""
        if self.answers:
            self.check(now, in_flight)
        if self.owed_since is None:
            self.owed_since = now

    def excuse(self, now: float, in_flight: int, silent: float, config: StallConfig) -> None:
        """A probe was answered at once although calls were silent ``silent`` s: the
        endpoint is alive and its calls are merely slow. Learn it (the next limit is
        at least twice this silence) and start counting afresh."""
        self.usual = max(self.usual, 2 * silent / config.silence_multiple)
        self.cap = max(self.cap, 2 * silent)
        self.reset(now, in_flight)

    def reset(self, now: float, in_flight: int) -> None:
        """The endpoint answered a probe: count silence afresh, learn nothing. It was
        set aside for a silence: a witness only once answering for a limit again."""
        self.answers = 0
        self.last_answer = now
        self.checked = now
        self.resumed = now
        self.owed_since = now if in_flight else None

    def released(self, in_flight: int) -> None:
        """The caller cancelled: nothing is owed for that call."""
        if in_flight == 0:
            self.owed_since = None

    def silent_for(self, now: float) -> float:
        """How long the endpoint has owed an answer without one (0 when it owes none)."""
        if self.owed_since is None:
            return 0.0
        return now - max(self.owed_since, self.last_answer)

    def limit(self, config: StallConfig) -> float:
        return max(config.min_silence_seconds, config.silence_multiple * self.usual)


@dataclass(frozen=True, slots=True)
class Member:
    """What :func:`find_stalled` reads of one endpoint."""

    key: str
    silence: Silence
    set_aside: bool  # already stalled or ejected


def find_stalled(members: Sequence[Member], now: float, config: StallConfig) -> list[str]:
    """Keys of endpoints to set aside now (pure; see the module docstring)."""
    if not config.enabled or len(members) < 2:
        return []
    room = max(1, int(config.max_stalled_percent * len(members) / 100)) - sum(
        1 for m in members if m.set_aside
    )
    if room <= 0:
        return []
    found: list[tuple[float, str]] = []
    for m in members:
        if m.set_aside:
            continue
        silent = m.silence.silent_for(now)
        limit = m.silence.limit(config)
        if silent <= limit:
            continue
        since = now - limit
        # A witness answered within the limit and was answering all through it: an
        # endpoint whose own long silence ended since (a fleet-wide pause ending one
        # endpoint after another) answered after the suspect's silence, not during it.
        witnessed = any(
            o is not m
            and not o.set_aside
            and o.silence.last_answer > since
            and o.silence.resumed <= since
            for o in members
        )
        if witnessed:
            found.append((silent / limit, m.key))
    found.sort(reverse=True)  # the most overdue first
    return [key for _, key in found[:room]]
