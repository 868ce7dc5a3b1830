"""The one watch loop every resolver shares: poll, diff, back off, keep last-known-good.

A resolver subclasses :class:`PollingResolver` and implements :meth:`_fetch`
(one resolution, raising :class:`~ecsgrpc.errors.ResolutionError` on failure)
and, when its refresh is not a fixed interval, :meth:`refresh_delay` (DNS uses
the record TTL). Everything else lives here, once:

* ``resolve()`` times and counts each resolution (``ecsgrpc_resolutions_total``
  by outcome ``success``/``error``/``throttled``, the duration histogram, the
  endpoints gauge) and turns unexpected exceptions into ResolutionError;
* ``watch()`` yields the first snapshot, then one only when membership or
  attributes change; after an error it keeps the last-known-good snapshot
  (yields nothing), backs off with jitter and tries again, so an error never
  empties a known set, while a successful empty answer is reported as empty;
* malformed records are skipped through :class:`SkipLog`: counted every time,
  logged once.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Self

from ecsgrpc.endpoints import Endpoint, EndpointSet
from ecsgrpc.errors import ResolutionError
from ecsgrpc.resolvers.options import ResolverOptions

if TYPE_CHECKING:  # prometheus-client loads with the first resolution, not at connect()
    from prometheus_client import CollectorRegistry, Counter

    from ecsgrpc.metrics import ResolverMetrics

__all__ = ["PollingResolver", "Skip", "SkipLog", "Throttled", "dedupe"]

_log = logging.getLogger(__name__)

# A callback taking (reason, detail) for each record skipped.
Skip = Callable[[str, str], None]
_MAX_REMEMBERED_SKIPS = 10_000


class Throttled(ResolutionError):
    """The discovery API refused the request for its rate limit (backs off like any error)."""


class SkipLog:
    """Counts every skipped record (metric label ``reason``) and logs each distinct one once."""

    def __init__(self, resolver: str, counter: Counter, logger: logging.Logger = _log) -> None:
        self._resolver = resolver
        self._counter = counter
        self._logger = logger
        self._seen: set[tuple[str, str]] = set()

    def __call__(self, reason: str, detail: str) -> None:
        self._counter.labels(self._resolver, reason).inc()
        key = (reason, detail)
        if key in self._seen or len(self._seen) >= _MAX_REMEMBERED_SKIPS:
            return
        self._seen.add(key)
        self._logger.warning("%s: skipped a record (%s): %s", self._resolver, reason, detail)


def dedupe(endpoints: Iterable[Endpoint], skip: Skip) -> list[Endpoint]:
    """Endpoints with the first of each address kept; later ones skipped as ``duplicate``."""
    seen: set[str] = set()
    kept = []
    for ep in endpoints:
        if ep.address in seen:
            skip("duplicate", ep.address)
            continue
        seen.add(ep.address)
        kept.append(ep)
    return kept


# resolve_now() triggers at most one extra resolution per this many seconds.
RESOLVE_NOW_MIN_INTERVAL = 1.0


class PollingResolver(abc.ABC):
    """Base of every built-in resolver; implements the ``Resolver`` protocol.

    One event loop; ``watch()`` may be iterated by one consumer at a time per
    call (each call runs its own loop). ``aclose()`` ends every watch promptly.
    """

    def __init__(
        self,
        name: str,
        target: str,
        *,
        options: ResolverOptions | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._name = name
        self._target = target
        self._options = options or ResolverOptions()
        self._rng = self._options.rng or random.Random()  # noqa: S311 (jitter, not crypto)
        self._registry = registry  # metrics are created at the first resolution
        self._closed = asyncio.Event()
        self._wake = asyncio.Event()
        self._last_fetch = -math.inf
        self._last_error: ResolutionError | None = None

    @functools.cached_property
    def _metrics(self) -> ResolverMetrics:
        from ecsgrpc.metrics import resolver_metrics

        return resolver_metrics(self._registry)

    @functools.cached_property
    def _skip(self) -> SkipLog:
        return SkipLog(self._name, self._metrics.skipped)

    @property
    def name(self) -> str:
        """Source name: snapshot ``source`` and the ``resolver`` metric label."""
        return self._name

    @property
    def target(self) -> str:
        return self._target

    @property
    def last_error(self) -> ResolutionError | None:
        """The error of the latest resolution, None once one succeeds (the
        channel quotes it when it has no endpoint to offer)."""
        return self._last_error

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @abc.abstractmethod
    async def _fetch(self) -> EndpointSet:
        """One resolution; raise ResolutionError (or Throttled) when it fails."""

    def refresh_delay(self, snapshot: EndpointSet) -> float:
        """Seconds until the next refresh after ``snapshot`` (default: the poll interval)."""
        return self._jittered(self._poll_interval())

    def _poll_interval(self) -> float:
        return math.inf

    def _jittered(self, seconds: float) -> float:
        """``seconds`` made up to ``refresh_jitter`` shorter, at random."""
        return seconds * (1.0 - self._options.refresh_jitter * self._rng.random())

    def _ttl_delay(self, ttl: float | None) -> float:
        """DNS-style refresh: the TTL (``negative_ttl`` when None) clamped to
        ``[min_ttl, max_ttl]``, made up to ``refresh_jitter`` earlier, never under the floor."""
        opts = self._options
        seconds = opts.negative_ttl if ttl is None else ttl
        clamped = min(max(seconds, opts.min_ttl), opts.max_ttl)
        return max(opts.min_ttl, self._jittered(clamped))

    def error_delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failed resolutions."""
        return self._options.backoff.delay(failures, self._rng)

    async def resolve(self) -> EndpointSet:
        """One fresh snapshot; raises ResolutionError (never another exception)."""
        if self.closed:
            raise ResolutionError(f"{self._name} resolver for {self._target!r} is closed")
        started = time.perf_counter()
        outcome = "error"
        try:
            snapshot = await self._fetch()
            outcome = "success"
        except Throttled as exc:
            outcome = "throttled"
            self._last_error = exc
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except ResolutionError as exc:
            self._last_error = exc
            raise
        except Exception as exc:
            _log.exception("%s: unexpected error resolving %r", self._name, self._target)
            self._last_error = ResolutionError(
                f"{self._name}: unexpected {type(exc).__name__} resolving {self._target!r}: {exc}"
            )
            raise self._last_error from exc
        finally:
            self._metrics.duration.labels(self._name).observe(time.perf_counter() - started)
            self._metrics.resolutions.labels(self._name, outcome).inc()
        self._last_error = None
        self._metrics.endpoints.labels(self._name, self._target).set(len(snapshot))
        return snapshot

    def resolve_now(self) -> None:
        """Ask a running watch to resolve again soon (gRPC's ``ResolveNow``).

        The balancer calls this when an endpoint stops serving, a sign that the
        membership is changing (a deploy). It shortens a normal refresh wait,
        never an error backoff, and acts at most once per ``RESOLVE_NOW_MIN_INTERVAL``.
        """
        self._wake.set()

    async def watch(self) -> AsyncIterator[EndpointSet]:
        """Yield the first snapshot, then each changed one, until closed.

        Never raises for a failed resolution: it logs, backs off and keeps the
        last-known-good snapshot (by yielding nothing new).
        """
        last: EndpointSet | None = None
        failures = 0
        while not self.closed:
            try:
                snapshot = await self.resolve()
            except ResolutionError as exc:
                if self.closed:
                    return
                failures += 1
                delay = self.error_delay(failures)
                self._log_failure(exc, failures, delay, last)
            else:
                if failures:
                    _log.info("%s: %r resolves again after %d failures", *self._ids(), failures)
                failures = 0
                if last is None or snapshot != last:
                    last = snapshot
                    yield snapshot
                delay = self.refresh_delay(snapshot)
                await self._sleep_or_wake(delay)
                continue
            await self._sleep(delay)

    def _ids(self) -> tuple[str, str]:
        return self._name, self._target

    def _log_failure(
        self, exc: ResolutionError, failures: int, delay: float, last: EndpointSet | None
    ) -> None:
        kept = "no endpoints known yet" if last is None else f"keeping {len(last)} known endpoints"
        level = logging.WARNING if failures == 1 else logging.DEBUG
        _log.log(
            level,
            "%s: resolving %r failed (%s); %s; retry %d in %.2fs",
            *self._ids(),
            exc,
            kept,
            failures,
            delay,
        )

    async def _sleep_or_wake(self, delay: float) -> None:
        """The refresh wait, cut short by :meth:`resolve_now` (rate-limited)."""
        loop = asyncio.get_running_loop()
        self._last_fetch = loop.time()
        deadline = self._last_fetch + delay
        while not self.closed:
            left = deadline - loop.time()
            if left <= 0:
                return
            self._wake.clear()
            waiters = {
                asyncio.ensure_future(self._closed.wait()),
                asyncio.ensure_future(self._wake.wait()),
            }
            try:
                await asyncio.wait(
                    waiters,
                    timeout=None if math.isinf(left) else left,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if self._wake.is_set():
                # Not sooner than the minimum interval after the last fetch.
                earliest = self._last_fetch + RESOLVE_NOW_MIN_INTERVAL
                deadline = min(deadline, max(earliest, loop.time()))

    async def _sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds or until closed, whichever comes first."""
        if math.isinf(delay):
            await self._closed.wait()
            return
        try:
            async with asyncio.timeout(max(delay, 0.0)):
                await self._closed.wait()
        except TimeoutError:
            pass

    async def aclose(self) -> None:
        """End every watch and release clients; idempotent."""
        self._closed.set()
        await self._release()

    async def _release(self) -> None:  # noqa: B027 (optional hook, empty on purpose)
        """Release I/O clients (override when the resolver holds any)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
