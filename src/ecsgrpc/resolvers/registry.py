"""Build a resolver from a target: the registry of resolvers by scheme."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from ecsgrpc.resolvers.base import Resolver
from ecsgrpc.resolvers.chain import ChainResolver
from ecsgrpc.resolvers.cloudmap import CloudMapResolver
from ecsgrpc.resolvers.dns import DnsResolver
from ecsgrpc.resolvers.ecs import EcsResolver
from ecsgrpc.resolvers.options import ResolverOptions, make_options
from ecsgrpc.resolvers.polling import PollingResolver
from ecsgrpc.resolvers.srv import SrvResolver
from ecsgrpc.resolvers.static import StaticResolver
from ecsgrpc.targets import (
    ChainSpec,
    CloudMapSpec,
    DnsSpec,
    EcsSpec,
    SrvSpec,
    StaticSpec,
    TargetSpec,
    parse_target,
)

__all__ = ["build_resolver"]


def build_resolver(
    target: str | TargetSpec, *, registry: CollectorRegistry | None = None, **options: Any
) -> Resolver:
    """A resolver for ``target`` (a string or a parsed spec); nothing is fetched yet.

    ``options`` are :class:`~ecsgrpc.resolvers.options.ResolverOptions` fields
    (``timeout``, ``min_ttl``, ``poll``, ``backoff``, ``endpoint_url``, ...).
    Raises ConfigError for a bad target or an unknown/bad option. The caller
    owns the resolver: ``async with build_resolver(...) as resolver: ...``.
    """
    spec = parse_target(target) if isinstance(target, str) else target
    return _build(spec, make_options(options), registry)


def _build(
    spec: TargetSpec, options: ResolverOptions, registry: CollectorRegistry | None
) -> PollingResolver:
    kw: dict[str, Any] = {"options": options, "registry": registry}
    match spec:
        case StaticSpec():
            return StaticResolver(spec, **kw)
        case DnsSpec():
            return DnsResolver(spec, **kw)
        case SrvSpec():
            return SrvResolver(spec, **kw)
        case CloudMapSpec():
            return CloudMapResolver(spec, **kw)
        case EcsSpec():
            return EcsResolver(spec, **kw)
        case ChainSpec():
            links = [_build(link, options, registry) for link in spec.links]
            return ChainResolver(links, target=spec.target, **kw)
    raise TypeError(f"not a target spec: {spec!r}")  # pragma: no cover
