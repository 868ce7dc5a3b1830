"""PollingResolver.resolve_now(): an early resolution, rate-limited."""

from __future__ import annotations

import asyncio
import time

import pytest

from ecsgrpc.endpoints import Endpoint, EndpointSet
from ecsgrpc.resolvers.polling import RESOLVE_NOW_MIN_INTERVAL, PollingResolver


class Counting(PollingResolver):
    """Answers from a list it is given; counts its fetches (no I/O to mock)."""

    def __init__(self) -> None:
        super().__init__("counting", "counting:///")
        self.fetches: list[float] = []
        self.hosts = ["127.0.0.2"]

    def _poll_interval(self) -> float:
        return 30.0

    async def _fetch(self) -> EndpointSet:
        self.fetches.append(time.monotonic())
        return EndpointSet.of((Endpoint(h, 50051) for h in self.hosts), source=self.name)


@pytest.mark.timeout(20)
async def test_resolve_now_shortens_the_wait_but_at_most_once_a_second() -> None:
    resolver = Counting()
    seen: list[EndpointSet] = []

    async def consume() -> None:
        async for snapshot in resolver.watch():
            seen.append(snapshot)

    task = asyncio.create_task(consume())
    try:
        while not resolver.fetches:
            await asyncio.sleep(0.01)
        resolver.hosts = ["127.0.0.2", "127.0.0.3"]
        asked = time.monotonic()
        for _ in range(50):  # a burst of requests
            resolver.resolve_now()
            await asyncio.sleep(0.05)
        # 2.5 s of asking: the first fetch at ~1 s, then about one a second; never 50.
        assert 2 <= len(resolver.fetches) <= 5
        gaps = [b - a for a, b in zip(resolver.fetches, resolver.fetches[1:], strict=False)]
        assert min(gaps) >= RESOLVE_NOW_MIN_INTERVAL - 0.05
        assert resolver.fetches[1] - asked < RESOLVE_NOW_MIN_INTERVAL + 0.3
        assert seen[-1].addresses == {"127.0.0.2:50051", "127.0.0.3:50051"}
    finally:
        await resolver.aclose()
        await asyncio.wait_for(task, 5)
