"""Retry rules (gRFC A6's safety rule) and a retry budget (Linkerd/Finagle's), pure.

A call may be retried, on a different endpoint, only when

* nothing of its response has reached the caller (no message, no headers
  handed out), and
* the failure says the request was not processed: ``UNAVAILABLE`` (the
  connection failed or the server refused the stream), or a code the method
  was explicitly marked idempotent for, and
* the caller's deadline has time left, attempts remain, and the budget allows it.

``per_attempt_timeout`` (gRFC A6's per-attempt receive timeout): for methods
the caller marked idempotent whose response is a single message (unary,
client streaming), each attempt gets at most this long, and an attempt that
runs out of it (``DEADLINE_EXCEEDED`` while the call's own deadline still has
time) is retried on another endpoint, so a call that landed on a task that
just froze moves on instead of waiting out its whole deadline. Streaming
responses are never cut by it: a stream that has started is the caller's.

The budget allows retries up to ``ratio`` of the calls seen in the last
``window_seconds`` plus ``min_per_second`` x window, so an outage cannot
multiply load: with ratio 0.2, at most 20 % extra attempts in a storm.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import grpc

__all__ = ["RetryBudget", "RetryPolicy", "backoff_seconds"]

_NOT_PROCESSED = frozenset({grpc.StatusCode.UNAVAILABLE})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a channel retries. ``idempotent_codes`` apply to idempotent methods only."""

    max_attempts: int = 3
    initial_backoff: float = 0.005
    max_backoff: float = 0.2
    multiplier: float = 2.0
    idempotent_codes: frozenset[grpc.StatusCode] = frozenset(
        {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED}
    )
    budget_ratio: float = 0.2
    budget_min_per_second: float = 10.0
    budget_window_seconds: float = 10.0
    per_attempt_timeout: float | None = None

    def __post_init__(self) -> None:
        if self.per_attempt_timeout is not None and not self.per_attempt_timeout > 0:
            from ecsgrpc.errors import ConfigError

            raise ConfigError(
                f"RetryPolicy.per_attempt_timeout must be > 0 seconds (or None), "
                f"got {self.per_attempt_timeout!r}"
            )

    def retryable(self, code: grpc.StatusCode, *, idempotent: bool) -> bool:
        """Whether a failure with ``code`` (before any response) may be retried."""
        if not idempotent:
            return code in _NOT_PROCESSED
        return code in self.idempotent_codes or (
            code is grpc.StatusCode.DEADLINE_EXCEEDED and self.per_attempt_timeout is not None
        )


def backoff_seconds(policy: RetryPolicy, attempt: int, rand: Callable[[], float]) -> float:
    """Full-jitter backoff before attempt number ``attempt`` (2, 3, ...)."""
    ceiling = min(policy.max_backoff, policy.initial_backoff * policy.multiplier ** (attempt - 2))
    return ceiling * rand()


class RetryBudget:
    """Token accounting over a sliding window. Single-threaded."""

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        window_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ratio = ratio
        self._floor = min_per_second * window_seconds
        self._window = window_seconds
        self._clock = clock
        # Per-second buckets: (second, calls, retries).
        self._buckets: deque[list[int]] = deque()

    @classmethod
    def from_policy(
        cls, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic
    ) -> RetryBudget:
        return cls(
            ratio=policy.budget_ratio,
            min_per_second=policy.budget_min_per_second,
            window_seconds=policy.budget_window_seconds,
            clock=clock,
        )

    def _bucket(self) -> list[int]:
        second = int(self._clock())
        buckets = self._buckets
        if not buckets or buckets[-1][0] != second:
            buckets.append([second, 0, 0])
            horizon = second - self._window
            while buckets and buckets[0][0] <= horizon:
                buckets.popleft()
        return buckets[-1]

    def record_calls(self, n: int) -> None:
        """``n`` calls started: the caller counts calls in a plain int of its own and
        hands them over in batches (the router: no method call per call)."""
        self._bucket()[1] += n

    def try_spend(self) -> bool:
        """Take one retry if the budget has room; False means do not retry."""
        bucket = self._bucket()
        calls = sum(b[1] for b in self._buckets)
        retries = sum(b[2] for b in self._buckets)
        if retries + 1 > self._floor + self._ratio * calls:
            return False
        bucket[2] += 1
        return True


def jitter() -> float:
    return random.random()  # noqa: S311 (jitter, not security)
