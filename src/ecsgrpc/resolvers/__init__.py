"""Resolvers: one per target scheme, all async, none blocking the event loop."""

from ecsgrpc.resolvers.base import Resolver

__all__ = ["Resolver"]
