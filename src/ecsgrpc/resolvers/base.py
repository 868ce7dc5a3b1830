"""The Resolver interface (grpc-go's ``resolver.Resolver``, made async).

A resolver turns one target into endpoint snapshots:

* ``resolve()`` returns one fresh :class:`~ecsgrpc.endpoints.EndpointSet` or raises
  :class:`~ecsgrpc.errors.ResolutionError`.
* ``watch()`` yields the first snapshot, then a new one only when membership or
  attributes change. It never raises for a transient error: it keeps the
  last-known-good set, backs off and retries; an error never empties a known set.
  It ends only when the resolver is closed (or the consumer stops iterating).
* ``aclose()`` stops watches and releases clients. Resolvers are async context
  managers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from ecsgrpc.endpoints import EndpointSet

__all__ = ["Resolver"]


@runtime_checkable
class Resolver(Protocol):
    """What the balancer needs from a discovery source."""

    @property
    def name(self) -> str:
        """Short source name, used in snapshots and metric labels (e.g. ``"dns"``)."""
        ...

    async def resolve(self) -> EndpointSet: ...

    def watch(self) -> AsyncIterator[EndpointSet]: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
