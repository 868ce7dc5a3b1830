"""Helpers for resolver tests: read metrics, collect watch output with a time bound."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from ecsgrpc.endpoints import EndpointSet
from ecsgrpc.resolvers.base import Resolver


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@dataclass
class Watcher:
    """Runs ``resolver.watch()`` in a task and records each snapshot with its time."""

    resolver: Resolver
    snapshots: list[EndpointSet] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def _run(self) -> None:
        async for snapshot in self.resolver.watch():
            self.snapshots.append(snapshot)
            self.times.append(time.monotonic())
            self._changed.set()

    def start(self) -> Watcher:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    @property
    def latest(self) -> EndpointSet | None:
        return self.snapshots[-1] if self.snapshots else None

    async def wait_for(self, predicate: Callable[[EndpointSet], bool], timeout: float) -> float:
        """Seconds until a snapshot satisfies ``predicate``; AssertionError after timeout."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            if self.latest is not None and predicate(self.latest):
                return time.monotonic() - started
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching snapshot within {timeout}s: {self.snapshots}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()

    async def stop(self) -> None:
        await self.resolver.aclose()
        if self._task is not None:
            async with asyncio.timeout(10):
                await self._task


@contextlib.asynccontextmanager
async def watching(resolver: Resolver) -> AsyncIterator[Watcher]:
    watcher = Watcher(resolver).start()
    try:
        yield watcher
    finally:
        await watcher.stop()


def hosts(snapshot: EndpointSet | None) -> set[str]:
    return set() if snapshot is None else {ep.host for ep in snapshot}
