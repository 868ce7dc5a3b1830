"""``ecsgrpc.resolve(target)``: one snapshot of a target, for scripts and the CLI."""

from __future__ import annotations

from typing import Any

from ecsgrpc.endpoints import EndpointSet
from ecsgrpc.resolvers.registry import build_resolver

__all__ = ["resolve"]


async def resolve(target: str, **options: Any) -> EndpointSet:
    """Resolve ``target`` once and release everything the resolver opened.

    ``options`` are resolver options (see :func:`ecsgrpc.resolvers.build_resolver`)
    plus ``registry`` for the metrics. Raises ConfigError for a bad target or
    option, ResolutionError when the source cannot answer (a chain: every link).
    """
    async with build_resolver(target, **options) as resolver:
        return await resolver.resolve()
