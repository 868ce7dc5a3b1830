"""The Resolver interface (grpc-go's ``resolver.Resolver``, made async).

A resolver turns one target into endpoint snapshots:

* ``resolve()`` returns one fresh :class:`~ecsgrpc.endpoints.EndpointSet` or raises
  :class:`~ecsgrpc.errors.ResolutionError`.
* ``watch()`` yields the first snapshot, then a new one only when membership or
  attributes change. It never raises for a transient error: it keeps the
  last-known-good set, backs off and retries; an error never empties a known set.
  It ends only when the resolver is closed (or the consumer stops iterating).
* ``resolve_now()`` asks a running watch to resolve again soon (gRPC's
  ``ResolveNow``; a hint, rate-limited by the resolver).
* ``last_error`` is the error of the latest resolution, None once one
  succeeds: a channel with no endpoint quotes it, so the caller learns why.
* ``aclose()`` stops watches and releases clients. Resolvers are async context
  managers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from ecsgrpc.endpoints import EndpointSet
from ecsgrpc.errors import ResolutionError

__all__ = ["Resolver"]


@runtime_checkable
class Resolver(Protocol):
    """What the balancer needs from a discovery source."""

    @property
    def name(self) -> str:
        """Short source name, used in snapshots and metric labels (e.g. ``"dns"``)."""
        ...

    @property
    def last_error(self) -> ResolutionError | None:
        """The latest resolution's error; None after a success."""
        ...

    async def resolve(self) -> EndpointSet: ...

    def watch(self) -> AsyncIterator[EndpointSet]: ...

    def resolve_now(self) -> None: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
