"""The shared watch loop: last-known-good, backoff, empty answers, metrics, closing."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque

import pytest
from prometheus_client import CollectorRegistry

from ecsgrpc.endpoints import Endpoint, EndpointSet
from ecsgrpc.errors import ConfigError, ResolutionError
from ecsgrpc.resolvers import Backoff, PollingResolver, ResolverOptions, Throttled, build_resolver
from tests.resolvers.helpers import hosts, metric, watching

pytestmark = pytest.mark.timeout(20)

A = Endpoint("127.0.0.2", 50051)
B = Endpoint("127.0.0.3", 50051)


class Scripted(PollingResolver):
    """A resolver whose answers come from a script: endpoint lists or exceptions."""

    def __init__(
        self, script: list[object], *, poll: float = 0.01, scale: float = 1.0, **kw: object
    ) -> None:
        backoff = Backoff(initial=0.01 * scale, maximum=0.05 * scale, jitter=0.2)
        options = ResolverOptions(poll=poll, backoff=backoff, rng=random.Random(1))
        super().__init__("scripted", "scripted://x", options=options, **kw)  # type: ignore[arg-type]
        self.script = deque(script)
        self.calls: list[float] = []

    def _poll_interval(self) -> float:
        assert self._options.poll is not None
        return self._options.poll

    async def _fetch(self) -> EndpointSet:
        self.calls.append(time.monotonic())
        step = self.script.popleft() if len(self.script) > 1 else self.script[0]
        if isinstance(step, BaseException):
            raise step
        assert isinstance(step, list)
        return EndpointSet.of(step, source=self.name)


async def test_watch_yields_only_changes_and_keeps_last_known_good() -> None:
    registry = CollectorRegistry()
    boom = ResolutionError("network down")
    resolver = Scripted([[A], [A], [A, B], boom, boom, boom, [A, B], []], registry=registry)
    async with watching(resolver) as watcher:
        await watcher.wait_for(lambda s: len(s) == 0, 5)
    # [A], [A, B], then after three errors the same [A, B] is not repeated; a real empty is.
    assert [hosts(s) for s in watcher.snapshots] == [
        {"127.0.0.2"},
        {"127.0.0.2", "127.0.0.3"},
        set(),
    ]
    assert metric(registry, "ecsgrpc_resolutions_total", resolver="scripted", outcome="error") == 3
    assert (
        metric(registry, "ecsgrpc_resolutions_total", resolver="scripted", outcome="success") >= 5
    )
    assert (
        metric(registry, "ecsgrpc_resolver_endpoints", resolver="scripted", target="scripted://x")
        == 0
    )


async def test_errors_back_off_exponentially_with_jitter() -> None:
    boom = ResolutionError("down")
    # Delays of 0.1 s and up, so that a loaded machine's scheduling delay
    # (tens of ms) cannot be taken for a longer backoff: the slack allowed
    # (0.12 s) stays under what the next doubling past the cap would add.
    resolver = Scripted([boom, boom, boom, boom, [A]], poll=10, scale=10)
    async with watching(resolver) as watcher:
        await watcher.wait_for(lambda s: len(s) == 1, 10)
    gaps = [b - a for a, b in zip(resolver.calls, resolver.calls[1:])]
    # initial 0.1 doubling: ~0.1, 0.2, 0.4, then capped at 0.5 (not 0.8), each up to 20 % shorter.
    for gap, base in zip(gaps, [0.1, 0.2, 0.4, 0.5], strict=True):
        assert base * 0.8 - 0.002 <= gap <= base + 0.12, gaps
    assert gaps[3] < 0.8 * 0.8  # capped: the uncapped delay would be 0.8 less 20 % at most
    assert gaps[2] > gaps[0]


async def test_throttling_is_counted_as_its_own_outcome() -> None:
    registry = CollectorRegistry()
    resolver = Scripted([Throttled("slow down"), [A]], registry=registry)
    async with watching(resolver) as watcher:
        await watcher.wait_for(lambda s: len(s) == 1, 5)
    assert (
        metric(registry, "ecsgrpc_resolutions_total", resolver="scripted", outcome="throttled") == 1
    )


async def test_unexpected_exceptions_become_resolution_errors() -> None:
    resolver = Scripted([KeyError("bug")])
    with pytest.raises(ResolutionError, match="unexpected KeyError"):
        await resolver.resolve()
    await resolver.aclose()


async def test_aclose_ends_a_watch_that_is_waiting() -> None:
    resolver = Scripted([[A]], poll=3600)
    async with watching(resolver) as watcher:
        await watcher.wait_for(lambda s: len(s) == 1, 5)
        started = time.monotonic()
    assert time.monotonic() - started < 1
    with pytest.raises(ResolutionError, match="closed"):
        await resolver.resolve()


async def test_backoff_policy_is_bounded_and_validated() -> None:
    policy = Backoff(initial=0.5, maximum=30, jitter=0.2)
    rng = random.Random(7)
    delays = [policy.delay(n, rng) for n in range(1, 2000)]
    assert all(0.4 <= d <= 30 for d in delays)
    assert max(delays[-10:]) > 20
    with pytest.raises(ConfigError):
        Backoff(initial=0)
    with pytest.raises(ConfigError, match="unknown resolver option"):
        build_resolver("127.0.0.2:1", colour="blue")


async def test_static_resolver_watch_yields_once_then_waits() -> None:
    async with build_resolver("static:///127.0.0.2:1,127.0.0.3:2") as resolver:
        async with watching(resolver) as watcher:
            await watcher.wait_for(lambda s: len(s) == 2, 5)
            await asyncio.sleep(0.1)
        assert len(watcher.snapshots) == 1
        assert watcher.snapshots[0].source == "static"
