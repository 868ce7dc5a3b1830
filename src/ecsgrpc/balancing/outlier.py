"""Passive outlier detection (Envoy's consecutive-failure ejection), free of I/O.

Each call's outcome is reported for its endpoint. ``consecutive_failures``
failures in a row (connection errors, ``UNAVAILABLE``) eject the endpoint for
``base_ejection_seconds x times ejected`` (capped), unless that would take the
ejected share above ``max_ejection_percent`` (at least one endpoint may always
be ejected, as in Envoy). Any success resets the count.

Defaults are tuned for ECS services of 2-20 tasks, where Envoy's 10 % cap
would never allow an ejection and 30 s is long next to a 10 s DNS TTL:
5 failures, 10 s base, 300 s cap, 50 % at most.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["OutlierConfig", "OutlierDetector"]


@dataclass(frozen=True, slots=True)
class OutlierConfig:
    consecutive_failures: int = 5
    base_ejection_seconds: float = 10.0
    max_ejection_seconds: float = 300.0
    max_ejection_percent: float = 50.0
    enabled: bool = True


@dataclass(slots=True)
class _Record:
    failures: int = 0
    times_ejected: int = 0
    ejected_until: float | None = None
    last_ejected_at: float = field(default=0.0)


class OutlierDetector:
    """Tracks outcomes per endpoint key. Single-threaded (one event loop)."""

    def __init__(
        self, config: OutlierConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or OutlierConfig()
        self._clock = clock
        self._records: dict[str, _Record] = {}
        # Keys with a failure counted since their last success: the call path
        # reports a success only for these (``key in failing``, no call).
        self.failing: set[str] = set()

    def now(self) -> float:
        return self._clock()

    def track(self, keys: Iterable[str]) -> None:
        """Follow exactly these endpoints (new ones start clean; gone ones are forgotten)."""
        wanted = set(keys)
        for key in list(self._records):
            if key not in wanted:
                del self._records[key]
                self.failing.discard(key)
        for key in wanted:
            self._records.setdefault(key, _Record())

    def success(self, key: str) -> None:
        self.failing.discard(key)
        record = self._records.get(key)
        if record is not None:
            record.failures = 0

    def failure(self, key: str) -> bool:
        """Count a failure; True when it ejected the endpoint just now."""
        record = self._records.get(key)
        if record is None or not self.config.enabled or record.ejected_until is not None:
            return False
        record.failures += 1
        self.failing.add(key)
        if record.failures < self.config.consecutive_failures or not self._room_to_eject():
            return False
        now = self._clock()
        # Ejection time grows with repeats; it decays again after a quiet spell.
        if now - record.last_ejected_at > self.config.max_ejection_seconds:
            record.times_ejected = 0
        record.times_ejected += 1
        duration = min(
            self.config.base_ejection_seconds * record.times_ejected,
            self.config.max_ejection_seconds,
        )
        record.ejected_until = now + duration
        record.last_ejected_at = now
        record.failures = 0
        self.failing.discard(key)
        return True

    def _room_to_eject(self) -> bool:
        total = len(self._records)
        ejected = sum(1 for r in self._records.values() if r.ejected_until is not None)
        if ejected == 0:
            return True
        return (ejected + 1) * 100 <= self.config.max_ejection_percent * total

    def release_expired(self) -> list[str]:
        """Return endpoints whose ejection ended (they are pickable again)."""
        now = self._clock()
        released = []
        for key, record in self._records.items():
            if record.ejected_until is not None and record.ejected_until <= now:
                record.ejected_until = None
                released.append(key)
        return released

    def is_ejected(self, key: str) -> bool:
        record = self._records.get(key)
        return record is not None and record.ejected_until is not None

    def next_release(self) -> float | None:
        """Clock time of the earliest ejection end, or None."""
        ends = [r.ejected_until for r in self._records.values() if r.ejected_until is not None]
        return min(ends) if ends else None
