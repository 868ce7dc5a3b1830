"""The router: what a call asks of its channel, and nothing more.

A call (``calls.py``) talks only to a :class:`Router`. The router owns

* picking and waiting: an endpoint for each attempt, waiting (up to the
  call's deadline, or ``connect_timeout`` without one) while none is ready,
  unless the caller asked not to wait (``wait_for_ready=False``);
* the retry policy and budget: whether a failed, uncommitted attempt may be
  retried, and after what pause (gRFC A6's backoff; the budget caps retries
  to a share of recent calls);
* the attempt deadline (:meth:`Router.attempt_timeout`): today the time left
  of the call's deadline; a per-attempt cap for idempotent methods plugs in
  here without touching the calls;
* call metrics: calls in flight (a plain counter, read by the gauge only when
  Prometheus scrapes), duration (appended to a batch, folded into the
  histogram when scraped) and failures per method and code, retries.

It knows nothing of call objects, so ``calls.py`` does not import the channel
and the channel only builds a router and hands it to its multicallables.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import grpc

from ecsgrpc.balancing.balancer import Balancer
from ecsgrpc.balancing.retry import RetryBudget, RetryPolicy, backoff_seconds, jitter
from ecsgrpc.balancing.subchannel import Subchannel
from ecsgrpc.errors import NoEndpointAvailable
from ecsgrpc.metrics import ClientMetrics

if TYPE_CHECKING:
    from ecsgrpc.telemetry.client import ClientTelemetry

__all__ = ["Router"]

_OK = grpc.StatusCode.OK
_monotonic = time.monotonic


def _wanting(wanted: int) -> str:
    return "no ready endpoint" if wanted < 2 else f"fewer than {wanted} ready endpoints"


# Durations wait in a batch (see BatchedHistogram) until a scrape, or until this many.
_FOLD_AT = 4096
# Calls are counted in a plain int and handed to the retry budget every this many
# calls and before each retry decision (the budget's own batching, one call less).
_BUDGET_BATCH = 64


class _InFlight:
    """Sum of the in-flight counts of every router of one target on one registry.

    The gauge reads it only when scraped (``set_function``), so a call pays
    two integer operations instead of two locked gauge updates.
    """

    def __init__(self) -> None:
        self.routers: weakref.WeakSet[Router] = weakref.WeakSet()

    def __call__(self) -> float:
        return float(sum(r.in_flight for r in list(self.routers)))


_in_flight_sums: weakref.WeakKeyDictionary[Any, dict[str, _InFlight]] = weakref.WeakKeyDictionary()


def _register_in_flight(router: Router, metrics: ClientMetrics, target: str) -> None:
    per_target = _in_flight_sums.setdefault(metrics, {})
    found = per_target.get(target)
    if found is None:
        found = per_target[target] = _InFlight()
        metrics.in_flight.labels(target).set_function(found)
    found.routers.add(router)


class Router:
    """Picks, waits, decides retries and keeps call metrics for one channel.

    One event loop; not thread-safe. Every method but :meth:`pick` and
    :meth:`wait_for_change` is synchronous and cheap: they sit on the per-call path.
    """

    __slots__ = (
        "__weakref__",
        "_balancer",
        "_budget",
        "_connect_timeout",
        "_describe",
        "_durations",
        "_failing",
        "_idempotent",
        "_metrics",
        "_ok_durations",
        "_policy",
        "_start",
        "_unbudgeted",
        "_unfolded",
        "answered",
        "closed",
        "done",
        "in_flight",
        "per_attempt_timeout",
        "target",
        "telemetry",
    )

    def __init__(
        self,
        *,
        balancer: Balancer,
        target: str,
        policy: RetryPolicy,
        idempotent: Collection[str],
        metrics: ClientMetrics,
        connect_timeout: float,
        start: Callable[[], None],
        describe: Callable[[], str],
        telemetry: ClientTelemetry | None = None,
    ) -> None:
        self._balancer = balancer
        self.target = target
        self._policy = policy
        self._budget = RetryBudget.from_policy(policy)
        self._unbudgeted = 0  # calls started, not yet handed to the budget
        self._idempotent = frozenset(idempotent)
        self._metrics = metrics
        self._connect_timeout = connect_timeout
        self._start = start
        self._describe = describe
        self._durations: dict[tuple[str, int], Any] = {}
        self._ok_durations: dict[str, Any] = {}  # the common case, keyed by method alone
        self._unfolded = 0  # durations batched since the last fold
        # The policy's cap on one attempt (None: attempt_timeout() is what is left
        # of the deadline, which the call path then computes itself).
        self.per_attempt_timeout = policy.per_attempt_timeout
        self.in_flight = 0
        # Set by the channel's close(): new calls fail at once.
        self.closed = False
        # OpenTelemetry for each call (None: off); see ecsgrpc.telemetry.
        self.telemetry = telemetry
        # done(sub, code): an attempt on ``sub`` ended with ``code``; exactly once
        # per attempt. The balancer's own method (one call less per attempt).
        self.done: Callable[[Subchannel, grpc.StatusCode], None] = balancer.done
        # Endpoints whose successes the balancer must hear of (outlier detection).
        self._failing = balancer.failing
        # answered(sub): a response message of an attempt on ``sub`` arrived
        # (progress, for silence detection).
        self.answered: Callable[[Subchannel], None] = balancer.answered
        _register_in_flight(self, metrics, target)

    # Picking and waiting.
    def begin(self) -> Subchannel | None:
        """A call starts (:meth:`call_started`) and its first attempt takes an endpoint
        if one is ready now (:meth:`pick_now`): both in one call, the per-call path."""
        self.in_flight += 1
        n = self._unbudgeted + 1
        if n >= _BUDGET_BATCH:
            self._budget.record_calls(n)
            n = 0
        self._unbudgeted = n
        if self.closed:
            return None  # pick() then says the channel is closed
        sub = self._balancer.picker.pick_any()
        if sub is not None:
            sub.in_flight += 1
        return sub

    def begin_now(self) -> Subchannel | None:
        """:meth:`begin` when an endpoint is ready now; else None and nothing counted
        (the call then starts the general way). A native unary call's per-call path."""
        if self.closed:
            return None
        sub = self._balancer.picker.pick_any()
        if sub is None:
            return None
        sub.in_flight += 1
        self.in_flight += 1
        n = self._unbudgeted + 1
        if n >= _BUDGET_BATCH:
            self._budget.record_calls(n)
            n = 0
        self._unbudgeted = n
        return sub

    def pick_now(self, tried: Collection[str]) -> Subchannel | None:
        """An endpoint for an attempt if one is ready now (its in-flight count taken)."""
        if self.closed:
            return None  # pick() then says the channel is closed
        sub = self._balancer.picker.pick(tried)
        if sub is not None:
            sub.in_flight += 1
        return sub

    async def pick(
        self, tried: Collection[str], deadline: float | None, wait_for_ready: bool | None
    ) -> Subchannel:
        """An endpoint for an attempt, waiting for one unless ``wait_for_ready`` is False.

        Raises NoEndpointAvailable: UNAVAILABLE (fail fast, or ``connect_timeout``
        passed without a deadline) or DEADLINE_EXCEEDED (the deadline passed).
        """
        if self.closed:
            raise NoEndpointAvailable(grpc.StatusCode.UNAVAILABLE, "channel is closed")
        self._start()
        since = time.monotonic()
        while True:
            sub = self.pick_now(tried)
            if sub is not None:
                return sub
            if wait_for_ready is False:
                raise NoEndpointAvailable(
                    grpc.StatusCode.UNAVAILABLE,
                    f"no ready endpoint for {self.target} ({self._describe()})",
                )
            await self.wait_for_change(deadline, since)

    async def wait_for_change(
        self, deadline: float | None, since: float | None = None, wanted: int = 1
    ) -> None:
        """Wait until the picker changes; NoEndpointAvailable when time runs out
        (its message counts the wait from ``since``, time.monotonic(), when the
        caller has been waiting longer than this call, and says ``wanted``
        ready endpoints were waited for when more than one)."""
        now = time.monotonic()
        if deadline is None or (
            not self._balancer.endpoint_count() and deadline > now + self._connect_timeout
        ):
            # Without a deadline, or while discovery has no endpoint at all (it
            # failed, or found none): give up after connect_timeout and say why.
            deadline = now + self._connect_timeout
            code = grpc.StatusCode.UNAVAILABLE
        else:
            code = grpc.StatusCode.DEADLINE_EXCEEDED
        started = now if since is None else since
        balancer = self._balancer
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise NoEndpointAvailable(
                    code,
                    f"{_wanting(wanted)} for {self.target} after "
                    f"{time.monotonic() - started:.2f}s ({self._describe()})",
                )
            before = balancer.picker
            await balancer.wait_for_change(left)
            if balancer.picker is not before:
                return

    # Deadlines and retries.
    def attempt_timeout(
        self, method: str, deadline: float | None, single_response: bool = False
    ) -> float | None:
        """The timeout to give one attempt of ``method``: what is left of the call's
        deadline (None: no deadline), capped by the policy's ``per_attempt_timeout``
        for idempotent methods with a single response (gRFC A6)."""
        left = None if deadline is None else deadline - time.monotonic()
        cap = self._policy.per_attempt_timeout
        if cap is None or not single_response or method not in self._idempotent:
            return left
        return cap if left is None else min(left, cap)

    def retry_pause(
        self, method: str, attempts: int, code: grpc.StatusCode, deadline: float | None
    ) -> float | None:
        """After attempt number ``attempts`` of an uncommitted call failed with ``code``:
        the pause before the next attempt, or None for no retry.

        Only for calls that have not committed (the caller saw nothing of the
        attempt); spends one token of the retry budget when it says yes.
        """
        policy = self._policy
        if attempts >= policy.max_attempts or not policy.retryable(
            code, idempotent=method in self._idempotent
        ):
            return None
        pause = backoff_seconds(policy, attempts + 1, jitter)
        if deadline is not None and deadline - time.monotonic() <= pause:
            return None
        if self._unbudgeted:
            self._budget.record_calls(self._unbudgeted)
            self._unbudgeted = 0
        if not self._budget.try_spend():
            self._metrics.failures.labels(method, "retry_budget_exhausted").inc()
            return None
        self._metrics.retries.labels(method).inc()
        return pause

    # Call metrics.
    def call_started(self) -> None:
        """A call starts without picking (:meth:`begin` does both)."""
        self.in_flight += 1
        n = self._unbudgeted + 1
        if n >= _BUDGET_BATCH:
            self._budget.record_calls(n)
            n = 0
        self._unbudgeted = n

    def finish_ok(self, sub: Subchannel, method: str, created: float) -> None:
        """A call created at ``created`` (time.monotonic()) ended OK on its first
        attempt, on ``sub``: :meth:`done` and :meth:`call_finished` in one call,
        with one clock read (a unary call's per-call path)."""
        now = _monotonic()
        if sub.stalled or sub.draining or sub.key in self._failing:
            self.done(sub, _OK)
        else:  # self.done(sub, _OK)'s common case, inlined (per call): keep in step
            sub.in_flight -= 1
            sub.silence.answers += 1
        self.in_flight -= 1
        try:
            batch = self._ok_durations[method]
        except KeyError:
            batch = self._ok_durations[method] = self._metrics.duration.batch(method, "OK")
        batch.append(now - created)
        self._unfolded += 1
        if self._unfolded >= _FOLD_AT:
            self._unfolded = 0
            self._metrics.duration.fold()

    def call_finished(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.in_flight -= 1
        if code is _OK:  # the common case: no Enum hashed (Python code), no call but append
            try:
                batch = self._ok_durations[method]
            except KeyError:
                batch = self._ok_durations[method] = self._metrics.duration.batch(method, "OK")
        else:
            key = (method, id(code))  # an Enum hashes in Python; id() does not
            batch = self._durations.get(key)
            if batch is None:
                batch = self._durations[key] = self._metrics.duration.batch(method, code.name)
            self._metrics.failures.labels(method, code.name.lower()).inc()
        batch.append(seconds)  # folded into the histogram when scraped
        self._unfolded += 1
        if self._unfolded >= _FOLD_AT:  # bounds the batches' memory between scrapes
            self._unfolded = 0
            self._metrics.duration.fold()
