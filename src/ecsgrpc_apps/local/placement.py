"""Task placement, as ECS's default ``spread(attribute:ecs.availability-zone)`` does (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol, TypeVar

__all__ = ["choose_zone", "scale_in_order"]


class _Placed(Protocol):
    @property
    def zone(self) -> str: ...

    @property
    def created_at(self) -> float: ...


_T = TypeVar("_T", bound=_Placed)


def choose_zone(zones: Sequence[str], live: Sequence[_Placed]) -> str:
    """The zone with the fewest live tasks; ties go to the earlier zone in ``zones``."""
    counts = Counter(t.zone for t in live)
    return min(zones, key=lambda z: (counts[z], zones.index(z)))


def scale_in_order(live: Sequence[_T], count: int) -> list[_T]:
    """``count`` tasks to stop: from the zone with the most tasks, newest first.

    Keeps the zones balanced, as ECS's scale-in does under a spread strategy.
    """
    remaining = list(live)
    chosen: list[_T] = []
    for _ in range(min(count, len(remaining))):
        counts = Counter(t.zone for t in remaining)
        busiest = max(counts.values())
        candidates = [t for t in remaining if counts[t.zone] == busiest]
        victim = max(candidates, key=lambda t: t.created_at)
        remaining.remove(victim)
        chosen.append(victim)
    return chosen
