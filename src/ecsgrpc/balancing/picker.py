"""Pickers: pure functions of a snapshot of ready subchannels (grpc-go's ``Picker``).

A picker is built whole on every state change and swapped atomically; ``pick()``
never blocks and does no I/O. It reads each candidate's ``in_flight`` (a plain
int the call path keeps) and ``weight``; nothing else.

Policies:

* ``round_robin``: each ready endpoint in turn (smooth weighted when weights differ).
* ``least_request`` (default): power of two choices: sample two distinct ready
  endpoints, take the one with fewer in-flight calls per unit of weight. Cheap,
  and it steers away from slow endpoints because their calls pile up. On the
  per-call path (``pick_any``, 2-64 endpoints of equal weight) the two samples
  are every ordered pair once per turn, in an order shuffled per picker
  (uniform over pairs, like independent draws, without a draw per pick).

Zone awareness sits in :func:`select_candidates`, before the policy: when the
caller's zone is known and the zone has enough ready endpoints, only those are
candidates (cross-zone traffic costs money on AWS and adds latency).
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Callable, Collection, Sequence
from typing import Any, Generic, Protocol, TypeVar

from ecsgrpc.errors import ConfigError

__all__ = [
    "POLICIES",
    "Candidate",
    "LeastRequestPicker",
    "Picker",
    "PickerFactory",
    "RoundRobinPicker",
    "ZonePolicy",
    "build_picker",
    "policy_factory",
    "register_policy",
    "select_candidates",
]


class Candidate(Protocol):
    """What a picker needs from a subchannel."""

    @property
    def key(self) -> str: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def weight(self) -> int: ...
    @property
    def zone(self) -> str | None: ...


C = TypeVar("C", bound=Candidate)


class Picker(Generic[C]):
    """Base picker: ``pick()`` returns a candidate or None when there is none."""

    def __init__(self, candidates: Sequence[C]) -> None:
        self.candidates: tuple[C, ...] = tuple(candidates)

    def pick(self, exclude: Collection[str] = ()) -> C | None:
        raise NotImplementedError

    def pick_any(self) -> C | None:
        """``pick(())``: a candidate, none excluded (the per-call path; policies may
        make it cheaper, as the built-in ones do)."""
        return self.pick(())

    def _fallback(self, exclude: Collection[str]) -> C | None:
        """Least-loaded candidate not excluded; any candidate when all are excluded."""
        pool = [c for c in self.candidates if c.key not in exclude] or list(self.candidates)
        return min(pool, key=_load) if pool else None


def _load(c: Candidate) -> float:
    return c.in_flight / c.weight


def _nothing() -> None:
    return None


class RoundRobinPicker(Picker[C]):
    """Round robin; smooth weighted round robin (nginx's) when weights differ."""

    def __init__(self, candidates: Sequence[C], *, start: int | None = None) -> None:
        super().__init__(candidates)
        schedule = _weighted_schedule(self.candidates)
        # Start at a random offset so many clients do not hit the same endpoint first.
        offset = random.randrange(len(schedule)) if start is None and schedule else (start or 0)  # noqa: S311
        if schedule:
            offset %= len(schedule)
            schedule = schedule[offset:] + schedule[:offset]
        # The turn: itertools.cycle's __next__, a C call (no Python frame per pick).
        self.pick_any: Callable[[], C | None] = (
            itertools.cycle(schedule).__next__ if schedule else _nothing
        )

    def pick(self, exclude: Collection[str] = ()) -> C | None:
        chosen = self.pick_any()
        if chosen is not None and exclude and chosen.key in exclude:
            return self._fallback(exclude)
        return chosen


def _weighted_schedule(candidates: Sequence[C]) -> tuple[C, ...]:
    weights = [c.weight for c in candidates]
    if not candidates or len(set(weights)) == 1:
        return tuple(candidates)
    divisor = math.gcd(*weights)
    weights = [w // divisor for w in weights]
    total = sum(weights)
    if total > 10_000:  # keep the schedule small; scale down, keep every endpoint
        weights = [max(1, w * 10_000 // total) for w in weights]
        total = sum(weights)
    current = [0] * len(candidates)
    schedule = []
    for _ in range(total):
        for i, w in enumerate(weights):
            current[i] += w
        best = max(range(len(candidates)), key=current.__getitem__)
        current[best] -= total
        schedule.append(candidates[best])
    return tuple(schedule)


class LeastRequestPicker(Picker[C]):
    """Power of two choices on in-flight calls per unit of weight."""

    def __init__(self, candidates: Sequence[C], *, rng: random.Random | None = None) -> None:
        super().__init__(candidates)
        self._rand = (rng or random.Random()).random  # noqa: S311 (not for security)
        # Equal weights (the usual case): compare in-flight counts alone.
        self._uniform = len({c.weight for c in self.candidates}) <= 1
        n = self._n = len(self.candidates)  # (no len() call per pick)
        # Up to _PAIRS_UP_TO candidates, every ordered pair of two distinct ones,
        # so that one draw picks both samples in a step (the per-call path).
        cands = self.candidates
        self._pairs: tuple[tuple[C, C], ...] = (
            tuple((cands[i], cands[j]) for i in range(n) for j in range(n) if i != j)
            if 2 <= n <= _PAIRS_UP_TO
            else ()
        )
        self._npairs = len(self._pairs)
        if self._pairs and self._uniform:
            # The per-call path: every ordered pair once per turn, in an order
            # shuffled per picker, the one with fewer calls in flight taken (the
            # pair's first on a tie: as likely to be either). A closure over the
            # turn (itertools.cycle's __next__): no attribute lookups, no draw.
            order = list(self._pairs)
            (rng or random).shuffle(order)
            turn = itertools.cycle(order).__next__

            def pick_any() -> C | None:
                a, b = turn()
                return a if a.in_flight <= b.in_flight else b

            self.pick_any = pick_any  # type: ignore[method-assign]

    def pick(self, exclude: Collection[str] = ()) -> C | None:
        cands = self.candidates
        n = self._n
        if n == 0:
            return None
        if n == 1:
            only = cands[0]
            return only if only.key not in exclude else self._fallback(exclude)
        pairs = self._pairs
        if pairs:  # two distinct samples, uniformly, in one draw
            a, b = pairs[int(self._rand() * self._npairs)]
        else:
            # Both samples from one draw: the integer part picks the first, the
            # fraction (still uniform) the second of the others.
            x = self._rand() * n
            i = int(x)
            j = int((x - i) * (n - 1))
            if j >= i:
                j += 1
            a, b = cands[i], cands[j]
        # Ties go to the first sample, which is random: no bias.
        if self._uniform:
            chosen = a if a.in_flight <= b.in_flight else b
        else:
            chosen = a if a.in_flight * b.weight <= b.in_flight * a.weight else b
        if exclude and chosen.key in exclude:
            other = b if chosen is a else a
            return other if other.key not in exclude else self._fallback(exclude)
        return chosen


_PAIRS_UP_TO = 64  # 4,032 pairs at most, built once per picker (per state change)


# A policy builds a picker from the candidates it may choose among.
PickerFactory = Callable[[Sequence[Any]], Picker[Any]]
# The open registry of policies by name (gRPC's LB policy registry, in small).
POLICIES: dict[str, PickerFactory] = {
    "round_robin": RoundRobinPicker,
    "least_request": LeastRequestPicker,
}
_POLICY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def register_policy(name: str, factory: PickerFactory) -> None:
    """Make ``connect(..., policy=name)`` build its pickers with ``factory``.

    ``factory(candidates)`` returns a :class:`Picker`; it is called on every
    state change and must not block. Names are ``[a-z][a-z0-9_]*``; a built-in
    name cannot be replaced. Raises ConfigError otherwise.
    """
    if not _POLICY_NAME.match(name):
        raise ConfigError(f"policy name {name!r} must match [a-z][a-z0-9_]*")
    if name in ("round_robin", "least_request"):
        raise ConfigError(f"policy {name!r} is built in and cannot be replaced")
    POLICIES[name] = factory


def policy_factory(name: str) -> PickerFactory:
    """The factory registered as ``name``; ConfigError (listing the known ones) otherwise."""
    factory = POLICIES.get(name)
    if factory is None:
        raise ConfigError(f"unknown policy {name!r}; choose one of {sorted(POLICIES)}")
    return factory


class ZonePolicy:
    """When to keep traffic in the caller's zone.

    In-zone only when the zone has at least ``min_ready`` ready endpoints and at
    least ``min_fraction`` of the zone's known endpoints are ready (a zone that
    is mostly failing should not absorb all of our load); otherwise spread
    over every zone.
    """

    def __init__(self, zone: str | None, *, min_ready: int = 2, min_fraction: float = 0.5) -> None:
        self.zone = zone
        self.min_ready = min_ready
        self.min_fraction = min_fraction


def select_candidates(
    ready: Sequence[C], zone_policy: ZonePolicy | None, zone_total: int = 0
) -> tuple[C, ...]:
    """The ready subchannels a picker should choose among (zone filter applied).

    ``zone_total`` is how many endpoints (ready or not) the caller's zone has.
    """
    if zone_policy is None or zone_policy.zone is None:
        return tuple(ready)
    local = tuple(c for c in ready if c.zone == zone_policy.zone)
    if len(local) >= zone_policy.min_ready and len(local) >= zone_policy.min_fraction * max(
        zone_total, 1
    ):
        return local
    return tuple(ready)


def build_picker(
    policy: str,
    ready: Sequence[C],
    *,
    zone_policy: ZonePolicy | None = None,
    zone_total: int = 0,
) -> Picker[C]:
    """Build the picker for ``policy`` over the ready subchannels."""
    candidates = select_candidates(ready, zone_policy, zone_total)
    return policy_factory(policy)(candidates)
