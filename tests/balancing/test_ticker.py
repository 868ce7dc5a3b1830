"""The ticker: periodic callbacks on a loop with no timer on the loop (ecsgrpc.balancing.ticker)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from ecsgrpc.balancing import ticker

pytestmark = pytest.mark.timeout(30)


async def test_calls_back_on_the_loop_thread_until_cancelled() -> None:
    threads: list[int] = []
    tick = ticker.every(0.02, lambda: threads.append(threading.get_ident()))
    try:
        for _ in range(200):
            if len(threads) >= 3:
                break
            await asyncio.sleep(0.01)
        assert len(threads) >= 3
        assert set(threads) == {threading.get_ident()}  # the loop's own thread
    finally:
        tick.cancel()
    await asyncio.sleep(0.05)  # a call posted before cancel() is dropped on the loop
    after = len(threads)
    await asyncio.sleep(0.1)
    assert len(threads) == after


async def test_leaves_no_timer_on_the_loop() -> None:
    # The point of the module: while only ticks are active, the loop has no
    # scheduled timer, so its iterations compute no select() timeout.
    loop: Any = asyncio.get_running_loop()
    fired = asyncio.Event()
    tick = ticker.every(0.02, fired.set)
    try:
        await fired.wait()  # waits without a timeout: no timer of the test's own
        assert [h for h in loop._scheduled if not h.cancelled()] == []
    finally:
        tick.cancel()


async def test_a_busy_loop_gets_one_call_not_a_backlog() -> None:
    calls: list[float] = []
    tick = ticker.every(0.01, lambda: calls.append(time.monotonic()))
    try:
        time.sleep(0.3)  # deliberately blocks the loop: 30 intervals
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert len(calls) <= 1
    finally:
        tick.cancel()


async def test_a_failing_callback_is_reported_and_keeps_its_schedule() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    count = 0

    def fail() -> None:
        nonlocal count
        count += 1
        raise RuntimeError("boom")

    tick = ticker.every(0.02, fail)
    try:
        for _ in range(200):
            if count >= 2:
                break
            await asyncio.sleep(0.01)
        assert count >= 2
        assert isinstance(reported[0]["exception"], RuntimeError)
    finally:
        tick.cancel()
        loop.set_exception_handler(None)


async def test_a_busy_balanced_channel_keeps_no_timer_on_the_loop() -> None:
    # Silence detection (every 0.1 s) and the connectivity recheck (every 0.5 s)
    # used to be sleeping tasks: a timer always scheduled, paid for by every loop
    # iteration (so by every response message). Real servers on loopback.
    from tests.balancing.test_calls import fleet
    from tests.support import call_service as svc

    loop: Any = asyncio.get_running_loop()
    async with fleet(n=2) as (channel, _state, _registry):
        unary = channel.unary_unary(svc.UNARY)
        for _ in range(20):
            assert await unary(b"ok") == b"ok"
        await asyncio.sleep(0.6)  # past a silence check and a connectivity recheck
        assert await unary(b"ok") == b"ok"
        live = [h for h in loop._scheduled if not h.cancelled()]
        assert live == [], live
