"""Resolver options: timeouts, refresh and backoff policy, and the AWS client seams.

Every option has a default fit for production; tests shorten the intervals.
``build_resolver(target, **options)`` turns keyword arguments into
:class:`ResolverOptions` and rejects unknown ones with a ConfigError.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from typing import Any

from ecsgrpc.errors import ConfigError

__all__ = ["Backoff", "ResolverOptions", "make_options"]

# Exponents above this only ever hit ``maximum``; capping avoids float overflow.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter after failed resolutions.

    The n-th consecutive failure (n >= 1) waits ``min(maximum, initial *
    multiplier**(n-1))`` reduced by up to ``jitter`` (a fraction), so many
    clients that failed together do not retry together.
    """

    initial: float = 0.5
    maximum: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.maximum and math.isfinite(self.maximum)):
            raise ConfigError(f"backoff: need 0 < initial <= maximum (got {self})")
        if self.multiplier < 1 or not 0 <= self.jitter < 1:
            raise ConfigError(f"backoff: need multiplier >= 1 and 0 <= jitter < 1 (got {self})")

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after ``failures`` consecutive failures."""
        exponent = min(max(failures - 1, 0), _MAX_EXPONENT)
        base = min(self.maximum, self.initial * self.multiplier**exponent)
        return base * (1.0 - self.jitter * rng.random())


@dataclass(frozen=True, slots=True)
class ResolverOptions:
    """Tunables shared by all resolvers (each uses the ones that apply to it).

    * ``timeout``: seconds for one resolution's I/O (a DNS query, an API call).
    * ``min_ttl``/``max_ttl``: DNS refresh is the record TTL clamped to these.
    * ``negative_ttl``: DNS refresh after an answer without records.
    * ``refresh_jitter``: refresh up to this fraction early, to spread clients.
    * ``poll``: override the target's poll interval (Cloud Map, ECS).
    * ``backoff``: policy after errors (including API throttling).
    * ``rng``: randomness for jitter (seed it in tests).
    * ``aws_session``, ``endpoint_url``, ``region``: AWS client seams; by default
      aiobotocore's session and the SDK's own environment variables.
    """

    timeout: float = 5.0
    min_ttl: float = 1.0
    max_ttl: float = 300.0
    negative_ttl: float = 5.0
    refresh_jitter: float = 0.1
    poll: float | None = None
    backoff: Backoff = field(default_factory=Backoff)
    rng: random.Random | None = None
    aws_session: Any = None
    endpoint_url: str | None = None
    region: str | None = None

    def __post_init__(self) -> None:
        for name in ("timeout", "min_ttl", "max_ttl", "negative_ttl"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value < math.inf):
                raise ConfigError(f"resolver option {name}={value!r} must be a positive number")
        if self.min_ttl > self.max_ttl:
            raise ConfigError(f"resolver options: min_ttl={self.min_ttl} > max_ttl={self.max_ttl}")
        if not 0 <= self.refresh_jitter < 1:
            jitter = self.refresh_jitter
            raise ConfigError(f"resolver option refresh_jitter={jitter!r} not in [0, 1)")
        if self.poll is not None and not 0 < self.poll < math.inf:
            raise ConfigError(f"resolver option poll={self.poll!r} must be a positive number")


_FIELDS = frozenset(f.name for f in dataclasses.fields(ResolverOptions))


def make_options(options: dict[str, Any]) -> ResolverOptions:
    """ResolverOptions from keyword arguments; ConfigError names an unknown one."""
    unknown = sorted(set(options) - _FIELDS)
    if unknown:
        known = ", ".join(sorted(_FIELDS))
        raise ConfigError(f"unknown resolver option(s) {', '.join(unknown)} (known: {known})")
    return ResolverOptions(**options)
