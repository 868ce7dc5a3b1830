"""Test helpers that are part of the public API: a resolver you drive by hand.

``ManualResolver`` (grpc-go's ``resolver/manual``) lets tests and users feed
snapshots to a :class:`~ecsgrpc.balancing.channel.BalancedChannel` directly::

    resolver = ManualResolver([Endpoint("127.0.0.2", 50051)])
    async with ecsgrpc.connect(resolver) as channel:
        resolver.update([Endpoint("127.0.0.3", 50051)])
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Self

from ecsgrpc.endpoints import Endpoint, EndpointSet
from ecsgrpc.errors import ResolutionError

__all__ = ["ManualResolver"]


class ManualResolver:
    """A resolver whose snapshots come from :meth:`update`. Not thread-safe; one loop."""

    def __init__(self, endpoints: Iterable[Endpoint] = (), *, name: str = "manual") -> None:
        self._name = name
        self._current = EndpointSet.of(endpoints, source=name)
        self._changed = asyncio.Event()
        self._closed = False
        self._version = 0
        self._error: ResolutionError | None = None
        self.resolve_now_calls = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def last_error(self) -> ResolutionError | None:
        """What :meth:`fail` set; cleared by :meth:`update`."""
        return self._error

    def fail(self, message: str) -> None:
        """Report a discovery error (the last-known-good snapshot stays published)."""
        self._error = ResolutionError(message)

    def resolve_now(self) -> None:
        """Counted only: a manual resolver has nothing to re-resolve."""
        self.resolve_now_calls += 1

    @property
    def current(self) -> EndpointSet:
        return self._current

    def update(self, endpoints: Iterable[Endpoint]) -> None:
        """Publish a new snapshot to every watcher (no-op when nothing changed)."""
        new = EndpointSet.of(endpoints, source=self._name)
        self._error = None
        if new == self._current:
            return
        self._current = new
        self._version += 1
        self._changed.set()

    async def resolve(self) -> EndpointSet:
        if self._closed:
            raise ResolutionError(f"resolver {self._name!r} is closed")
        return self._current

    async def watch(self) -> AsyncIterator[EndpointSet]:
        seen = self._version
        yield self._current
        while not self._closed:
            if self._version == seen:
                self._changed.clear()
                await self._changed.wait()
                continue
            seen = self._version
            yield self._current

    async def aclose(self) -> None:
        self._closed = True
        self._changed.set()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
