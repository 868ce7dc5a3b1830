"""Build a resolver from a target: the open registry of resolvers by scheme.

Built-in schemes load their resolver module only when a target uses them, so
``connect("static:///...")`` never imports dnspython's resolver or the AWS
SDK. ``cloudmap://`` and ``ecs://`` need the ``aws`` extra; without it the
error is one line naming it. :func:`register_scheme` adds a scheme.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ecsgrpc.errors import ConfigError
from ecsgrpc.resolvers.base import Resolver
from ecsgrpc.resolvers.options import ResolverOptions, make_options
from ecsgrpc.targets import (
    ChainSpec,
    CloudMapSpec,
    CustomSpec,
    DnsSpec,
    EcsSpec,
    SrvSpec,
    StaticSpec,
    TargetSpec,
    add_scheme,
    parse_target,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ecsgrpc.resolvers.polling import PollingResolver

__all__ = ["AWS_EXTRA_HINT", "ResolverFactory", "build_resolver", "register_scheme"]

# (target string, options, metrics registry) -> a resolver for that target.
ResolverFactory = Callable[[str, ResolverOptions, "CollectorRegistry | None"], "PollingResolver"]
_FACTORIES: dict[str, ResolverFactory] = {}

AWS_EXTRA_HINT = "pip install 'ecsgrpc[aws]'"


def register_scheme(scheme: str, factory: ResolverFactory) -> None:
    """Make ``scheme://...`` targets resolve through ``factory``.

    ``factory(target, options, registry)`` returns a new, unstarted
    :class:`~ecsgrpc.resolvers.polling.PollingResolver` subclass (implement
    ``_fetch``); it may raise ConfigError for a bad target. Works in
    fallback chains too (``myscheme://x|dns:///y:1``). Built-in and gRPC scheme
    names cannot be replaced (ConfigError).
    """
    _FACTORIES[add_scheme(scheme)] = factory


def build_resolver(
    target: str | TargetSpec, *, registry: CollectorRegistry | None = None, **options: Any
) -> Resolver:
    """A resolver for ``target`` (a string or a parsed spec); nothing is fetched yet.

    ``options`` are :class:`~ecsgrpc.resolvers.options.ResolverOptions` fields
    (``timeout``, ``min_ttl``, ``poll``, ``backoff``, ``endpoint_url``, ...).
    Raises ConfigError for a bad target, an unknown/bad option, or a scheme
    whose extra is not installed. The caller owns the resolver:
    ``async with build_resolver(...) as resolver: ...``.
    """
    spec = parse_target(target) if isinstance(target, str) else target
    return _build(spec, make_options(options), registry)


def _build(
    spec: TargetSpec, options: ResolverOptions, registry: CollectorRegistry | None
) -> PollingResolver:
    kw: dict[str, Any] = {"options": options, "registry": registry}
    match spec:
        case StaticSpec():
            from ecsgrpc.resolvers.static import StaticResolver

            return StaticResolver(spec, **kw)
        case DnsSpec():
            from ecsgrpc.resolvers.dns import DnsResolver

            return DnsResolver(spec, **kw)
        case SrvSpec():
            from ecsgrpc.resolvers.srv import SrvResolver

            return SrvResolver(spec, **kw)
        case CloudMapSpec() | EcsSpec():
            return _aws(spec, kw)
        case CustomSpec():
            return _FACTORIES[spec.scheme](spec.target, options, registry)
        case ChainSpec():
            from ecsgrpc.resolvers.chain import ChainResolver

            links = [_build(link, options, registry) for link in spec.links]
            return ChainResolver(links, target=spec.target, **kw)
    raise TypeError(f"not a target spec: {spec!r}")  # pragma: no cover


def _aws(spec: CloudMapSpec | EcsSpec, kw: dict[str, Any]) -> PollingResolver:
    scheme = "cloudmap" if isinstance(spec, CloudMapSpec) else "ecs"
    try:
        if isinstance(spec, CloudMapSpec):
            from ecsgrpc.resolvers.cloudmap import CloudMapResolver

            return CloudMapResolver(spec, **kw)
        from ecsgrpc.resolvers.ecs import EcsResolver

        return EcsResolver(spec, **kw)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ("aiobotocore", "botocore", "aiohttp"):
            raise
        raise ConfigError(
            f"{spec.target!r}: {scheme}:// targets need the AWS SDK: {AWS_EXTRA_HINT}"
        ) from None
