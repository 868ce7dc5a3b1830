"""Resolvers: one per target scheme, all async, none blocking the event loop."""

from ecsgrpc.resolvers.base import Resolver
from ecsgrpc.resolvers.options import Backoff, ResolverOptions
from ecsgrpc.resolvers.polling import PollingResolver, Throttled
from ecsgrpc.resolvers.registry import build_resolver

__all__ = [
    "Backoff",
    "PollingResolver",
    "Resolver",
    "ResolverOptions",
    "Throttled",
    "build_resolver",
]
