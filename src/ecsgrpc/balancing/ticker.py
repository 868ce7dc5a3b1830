"""Periodic callbacks on an event loop without a timer on the loop: one clock thread per process.

Why: while any timer is scheduled on an asyncio loop (``asyncio.sleep``,
``call_later``, ``wait(..., timeout=)``), every iteration of the loop computes
a ``select()`` timeout: ``time()``, ``min()``, ``max()``, ``math.ceil()``,
about five Python-level calls per iteration. A channel's periodic checks
(silence detection every 0.1 s, the connectivity recheck every 0.5 s) written
as sleeping tasks keep a timer scheduled at all times, so every response
message on the channel paid for them. Here one daemon thread sleeps until the
next due time and posts the due callbacks of each loop with one
``loop.call_soon_threadsafe``; the loop itself has no timer to look at.

Contract of :func:`every`: called from a running loop, it calls ``callback()``
on that loop about every ``interval`` seconds until :meth:`Tick.cancel`.
Never two calls of one tick are pending at once (a loop that is busy for a
while gets one call, not a backlog). A callback that raises is reported to
the loop's exception handler and keeps its schedule. A closed loop ends its
ticks. The first call comes ``interval`` seconds after :func:`every`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable

__all__ = ["Tick", "every"]


class Tick:
    """One periodic callback (see :func:`every`). ``cancel()`` from the loop's thread."""

    __slots__ = ("_callback", "_interval", "_loop", "_pending", "cancelled", "due")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, interval: float, callback: Callable[[], None]
    ) -> None:
        self._loop = loop
        self._interval = interval
        self._callback = callback
        self._pending = False  # posted to the loop, not run yet
        self.cancelled = False
        self.due = time.monotonic() + interval

    def cancel(self) -> None:
        self.cancelled = True


def _run_ticks(loop: asyncio.AbstractEventLoop, ticks: list[Tick]) -> None:
    """On the loop: the ticks that came due together."""
    for tick in ticks:
        tick._pending = False
        if tick.cancelled:
            continue
        try:
            tick._callback()
        except Exception as exc:  # one tick's failure must not stop the others
            loop.call_exception_handler(
                {"message": f"periodic callback {tick._callback!r} failed", "exception": exc}
            )


class _Clock:
    """The thread: a heap of ticks by due time."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Tick]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, tick: Tick) -> None:
        with self._cond:
            heapq.heappush(self._heap, (tick.due, next(self._order), tick))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="ecsgrpc-ticker", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _due(self) -> dict[asyncio.AbstractEventLoop, list[Tick]]:
        """Wait for the next due time; the due ticks by loop (rescheduled already)."""
        heap = self._heap
        with self._cond:
            while True:
                while heap and heap[0][2].cancelled:
                    heapq.heappop(heap)
                if not heap:
                    self._cond.wait()
                    continue
                now = time.monotonic()
                wait = heap[0][0] - now
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                due: dict[asyncio.AbstractEventLoop, list[Tick]] = {}
                while heap and heap[0][0] <= now:
                    tick = heapq.heappop(heap)[2]
                    if tick.cancelled:
                        continue
                    if not tick._pending:
                        tick._pending = True
                        due.setdefault(tick._loop, []).append(tick)
                    tick.due += tick._interval
                    if tick.due <= now:  # fell behind (a stopped process): no burst
                        tick.due = now + tick._interval
                    heapq.heappush(heap, (tick.due, next(self._order), tick))
                return due

    def _run(self) -> None:
        while True:
            for loop, ticks in self._due().items():
                try:
                    loop.call_soon_threadsafe(_run_ticks, loop, ticks)
                except RuntimeError:  # the loop is closed: its ticks end
                    for tick in ticks:
                        tick.cancelled = True

    def _after_fork(self) -> None:
        # The child has no clock thread, and its parent's loops are not its own.
        self._cond = threading.Condition()
        self._heap = []
        self._thread = None


_CLOCK = _Clock()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_CLOCK._after_fork)


def every(interval: float, callback: Callable[[], None]) -> Tick:
    """Call ``callback()`` on the running loop every ``interval`` (> 0) seconds (see the module)."""
    tick = Tick(asyncio.get_running_loop(), interval, callback)
    _CLOCK.add(tick)
    return tick
