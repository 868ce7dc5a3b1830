"""An adaptive concurrency limit on latency (a gradient limiter).

The gateway admits a conversation only while fewer than ``limit`` conversations
are in their *working* phase; the others are refused at once (503). What counts
as working is the part of a conversation that burns the gateway's CPU or waits
in its queue: a JSON conversation until its reply is assembled, an SSE one
until its first event was relayed. A stream that then waits on its agent costs
the gateway almost nothing and no longer counts, so a thousand long, idle SSE
conversations do not lock new ones out (the cap on open connections bounds
them instead).

The limit follows the latency of the working phase, up to the first event
(time to first event, ``ttfe``), the same measure for both modes: in the spirit
of Netflix's concurrency-limits ``Gradient2`` and Envoy's adaptive concurrency
filter, each window of samples gives a gradient ``tolerance * baseline /
window_mean`` (clamped to [0.5, 1]); the new limit is ``limit * gradient +
sqrt(limit)`` (the square root is headroom, so the limit keeps probing
upward while latency holds), clamped to ``[min_limit, max_limit]``. A rise is
smoothed (``smoothing`` of the step a window); a cut applies at once: a window
past the tolerance is a queue, and each window it stays costs the admitted
latency. Smoothed both ways, a limit at its start (32) met by open-loop
overload took about 30 windows (1.6 s) to the knee, with admitted conversations
waiting 16-49 ms (against a 1.8 ms baseline) in those windows, over 1 % of a
step's samples: the p99 of the step. Cut at once it takes about 6 windows.

``baseline`` is the no-load latency. It goes down whenever a window is faster,
and it follows the windows upward only while the limiter is *not* saturated
(in flight below half the limit), when a window's latency has no queueing in
it. So sustained overload cannot ratchet the baseline (and the limit) up,
while agents that became slower for good are learnt as soon as load allows.

The gateway's own CPU is watched directly too: :class:`LagMonitor` measures
how late the event loop runs a timer, and when that lag passes
``lag_threshold`` the limit is cut by ``lag_decrease`` (at most once per
window): a multiplicative decrease that needs no baseline, so a gateway that
meets overload before it ever saw a quiet moment still sheds it, and the
windows that follow (shorter queues) teach the gradient its baseline. A stream
that waits on its agent adds no lag; work that burns the gateway's CPU does.

Neither rule lowers a limit that is less than half used: then slower answers
or a late timer are not the admitted work's doing (a slow agent, a busy
machine), and refusing more would not help. A limit that is less than half
used and below ``initial_limit`` grows back to it (by ``sqrt(limit)`` a
window) while the latency is within ``tolerance`` of the baseline: a stall
that cut it is over, and light load is not refused for it.

Refusals steer the gradient too (each window counts them per latency sample).
A window that refused nothing does not lower the limit: the demand fits under
it, and a lower limit would only start refusing work that is being served.
A window that refused ``refusal_ratio`` (4) or more conversations per one it
served does not lower it either, and raises a limit below ``initial_limit``
by ``sqrt(limit)``: load past capacity that goes away when refused gives about
``offered / served - 1`` refusals per served conversation (1 at twice the
capacity), while clients that re-send a 503 at once, ignoring
``Retry-After``, come back as fast as they are answered: 5 to 24 refusals
per served conversation measured with 12 such clients on a 2-core machine.
Refusing those sheds nothing and costs the gateway's core, and the admitted
conversations' latency (their own queue plus the refusal work)
would pin the gradient at its floor; held instead, they are served and
nothing is refused, so the rule before keeps the limit. The price: open-loop
load past about five times the capacity also raises the limit to
``initial_limit`` (never above it), which bounds the admitted latency as the
starting limit does; the refusals themselves are the same either way.

Everything in :class:`AdaptiveLimit` is plain arithmetic on one event loop:
no locks, no I/O.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["AdaptiveLimit", "LagMonitor", "LimitConfig"]


@dataclass(frozen=True)
class LimitConfig:
    """Limits and tuning of :class:`AdaptiveLimit`.

    ``adaptive=False`` pins the limit at ``max_limit`` (a fixed limit).
    """

    max_limit: int = 256
    min_limit: int = 4
    initial_limit: int = 32
    tolerance: float = 2.0
    smoothing: float = 0.2
    window_seconds: float = 0.05
    window_samples: int = 8
    baseline_follow: float = 0.05
    lag_threshold: float = 0.25
    lag_decrease: float = 0.8
    refusal_ratio: float = 4.0
    adaptive: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.min_limit <= self.max_limit:
            raise ValueError(
                f"min_limit {self.min_limit} must be between 1 and max_limit {self.max_limit}"
            )
        if self.tolerance < 1:
            raise ValueError(f"tolerance {self.tolerance} must be at least 1")


class AdaptiveLimit:
    """The admission limit: :meth:`try_acquire` before work, :meth:`release` after it."""

    def __init__(
        self, config: LimitConfig | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or LimitConfig()
        self._clock = clock
        cfg = self.config
        start = cfg.max_limit if not cfg.adaptive else cfg.initial_limit
        self._limit = float(min(max(start, cfg.min_limit), cfg.max_limit))
        self.in_flight = 0
        self.baseline: float | None = None
        self._window_start = clock()
        self._window_sum = 0.0
        self._window_count = 0
        self._window_peak = 0
        self._window_refusals = 0
        self._last_cut = -math.inf

    @property
    def limit(self) -> int:
        """Conversations admitted at once, now."""
        return int(self._limit)

    def try_acquire(self) -> bool:
        """Admit one more (True) or refuse it (False). Never blocks."""
        if self.in_flight >= int(self._limit):
            self._window_refusals += 1
            return False
        self.in_flight += 1
        self._window_peak = max(self._window_peak, self.in_flight)
        return True

    def refused(self) -> None:
        """A conversation was refused without :meth:`try_acquire` (the door saw the limit full)."""
        self._window_refusals += 1

    def release(self, latency: float | None) -> None:
        """One admitted conversation left its working phase.

        ``latency``: its time to first event in seconds, or None when it gave
        no sample (it failed, or its client left, before an event).
        """
        self.in_flight -= 1
        if latency is None or not self.config.adaptive:
            return
        self._window_sum += latency
        self._window_count += 1
        now = self._clock()
        cfg = self.config
        if self._window_count >= cfg.window_samples and now - self._window_start >= (
            cfg.window_seconds
        ):
            self._update(
                self._window_sum / self._window_count,
                self._window_peak,
                self._window_refusals / self._window_count,
            )
            self._window_start = now
            self._window_sum = 0.0
            self._window_count = 0
            self._window_peak = self.in_flight
            self._window_refusals = 0

    def observe_lag(self, lag: float) -> None:
        """The event loop ran a timer ``lag`` seconds late: past the threshold, cut the limit."""
        cfg = self.config
        if not cfg.adaptive or lag <= cfg.lag_threshold or self.in_flight < self._limit / 2:
            # Lag while the limit is not half used is not the admitted work's doing.
            return
        now = self._clock()
        if now - self._last_cut < cfg.window_seconds:
            return
        self._last_cut = now
        self._limit = max(float(cfg.min_limit), self._limit * cfg.lag_decrease)

    def _update(self, mean: float, peak: int, refusals: float) -> None:
        """One window: its mean latency, its peak in flight, its refusals per sample."""
        cfg = self.config
        saturated = peak >= self._limit / 2
        if self.baseline is None or mean < self.baseline:
            self.baseline = mean
        elif not saturated:
            self.baseline += (mean - self.baseline) * cfg.baseline_follow
        if not saturated:
            # Not using half the limit: slower answers are not our queue (the agents,
            # the machine), and nothing says a limit above the starting one is safe.
            # A limit cut below the start (a stall, a burst) comes back to it while
            # latency is normal again, so a past stall does not refuse light load.
            if self._limit < cfg.initial_limit and mean <= cfg.tolerance * self.baseline:
                self._limit = min(float(cfg.initial_limit), self._limit + math.sqrt(self._limit))
            return
        if refusals >= cfg.refusal_ratio:
            # Refused many times over what was served: clients that re-send at once
            # (a closed population), so refusing sheds nothing and only costs the
            # core. Hold more of them, up to the start; once they fit, nothing is
            # refused and the rule below keeps the limit.
            if self._limit < cfg.initial_limit:
                self._limit = min(float(cfg.initial_limit), self._limit + math.sqrt(self._limit))
            return
        gradient = min(1.0, max(0.5, cfg.tolerance * self.baseline / mean))
        new = self._limit * gradient + math.sqrt(self._limit)
        if new < self._limit:
            # Latency past the tolerance: a queue, cut at once. Smoothed, a cut
            # took about 30 windows (1.6 s) from the starting limit to the knee,
            # and the queue of those windows set the admitted p99.
            smoothed = new
        else:
            smoothed = self._limit * (1 - cfg.smoothing) + new * cfg.smoothing
        if refusals == 0:
            # Nothing refused: the demand fits under the limit, and a lower limit
            # would only start refusing work that is being served.
            smoothed = max(smoothed, self._limit)
        self._limit = min(float(cfg.max_limit), max(float(cfg.min_limit), smoothed))


class LagMonitor:
    """Measures the event loop's lag every ``interval`` seconds and reports it to ``limit``.

    One timer callback per interval (50 a second by default): no task, no thread.
    ``observe``, when given, gets every sample too (the gateway's histogram).
    """

    def __init__(
        self,
        limit: AdaptiveLimit,
        interval: float = 0.02,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        self.limit = limit
        self.interval = interval
        self.observe = observe
        self.last_lag = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._schedule()

    def _schedule(self) -> None:
        assert self._loop is not None
        due = self._loop.time() + self.interval
        self._handle = self._loop.call_at(due, self._tick, due)

    def _tick(self, due: float) -> None:
        assert self._loop is not None
        self.last_lag = max(0.0, self._loop.time() - due)
        self.limit.observe_lag(self.last_lag)
        if self.observe is not None:
            self.observe(self.last_lag)
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
