"""The balancer: endpoint snapshots in, subchannels and a picker out.

It owns the subchannels of one target. Discovery snapshots are applied as a
diff (new endpoints get a subchannel, vanished ones drain: no new calls, the
in-flight ones finish, then the connection closes). Every subchannel change
rebuilds the picker whole and wakes calls waiting for an endpoint. Outcomes
come back through :meth:`Balancer.done` (and stream messages through
:meth:`Balancer.answered`), which feed outlier detection and silence
detection (``stall.py``; an answer is only counted there): a check every
``check_interval_seconds`` stamps the counts, sets aside endpoints that stay
silent while others answer, and probes them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection

import grpc

from ecsgrpc.balancing import ticker
from ecsgrpc.balancing.outlier import OutlierDetector
from ecsgrpc.balancing.picker import Picker, ZonePolicy, build_picker
from ecsgrpc.balancing.stall import Member, StallConfig, find_stalled
from ecsgrpc.balancing.status import EndpointStatus
from ecsgrpc.balancing.subchannel import ChannelFactory, Connectivity, Subchannel
from ecsgrpc.balancing.ticker import Tick
from ecsgrpc.endpoints import EndpointSet
from ecsgrpc.metrics import ClientMetrics

__all__ = ["Balancer"]

log = logging.getLogger(__name__)

# Codes that count against an endpoint in outlier detection: the endpoint (or
# the way to it) failed, not the request.
_OK = grpc.StatusCode.OK
_ENDPOINT_FAILURES = frozenset({grpc.StatusCode.UNAVAILABLE})
# Codes that say nothing about whether the endpoint answered: they neither
# count against it in outlier detection nor reset its count (a deadline used
# to reset it, so a frozen task was never ejected). Silence detection treats
# UNAVAILABLE and DEADLINE_EXCEEDED as "no answer".
_NEUTRAL = frozenset({grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED})
_NO_ANSWER = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# A connection replaced after a stall keeps its calls in flight until they end
# (their deadline, or TCP giving up on a dead peer); this bounds a call with
# no deadline on a connection that never answers again.
_RETIRE_GRACE_SECONDS = 600.0


class Balancer:
    """Subchannels and picker for one target. One event loop; not thread-safe."""

    def __init__(
        self,
        *,
        target: str,
        policy: str,
        channel_factory: ChannelFactory,
        metrics: ClientMetrics,
        outlier: OutlierDetector,
        zone_policy: ZonePolicy | None,
        health_check: bool,
        health_service: str,
        on_endpoint_lost: Callable[[], None] | None = None,
        stall: StallConfig | None = None,
    ) -> None:
        self.target = target
        self._stall = stall or StallConfig()
        self._stall_tick: Tick | None = None  # silence checks (a clock thread, no loop timer)
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._on_endpoint_lost = on_endpoint_lost
        self._ready_keys: frozenset[str] = frozenset()
        self._policy = policy
        self._factory = channel_factory
        self._metrics = metrics
        self._outlier = outlier
        self.zone_policy = zone_policy
        self._health_check = health_check
        self._health_service = health_service
        self._subchannels: dict[str, Subchannel] = {}
        self._draining: dict[str, Subchannel] = {}
        self.picker: Picker[Subchannel] = build_picker(policy, ())
        self._changed = asyncio.Event()
        self._rebuild_scheduled = False
        self._release_timer: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.snapshot_source: str | None = None
        self.resolved = False

    # Discovery side.
    def apply(self, snapshot: EndpointSet) -> None:
        """Bring the subchannels in line with a new snapshot."""
        self.resolved = True
        self.snapshot_source = snapshot.source
        wanted = {ep.address: ep for ep in snapshot}
        for key, sub in list(self._subchannels.items()):
            if key not in wanted:
                del self._subchannels[key]
                self._drain(sub)
        for key, endpoint in wanted.items():
            found = self._subchannels.get(key) or self._draining.pop(key, None)
            if found is not None:
                sub = found
                sub.draining = False  # it may have come back before it closed
            else:
                sub = Subchannel(
                    endpoint,
                    channel_factory=self._factory,
                    on_change=self._on_change,
                    health_check=self._health_check,
                    health_service=self._health_service,
                )
                sub.silence.cap = self._stall.min_silence_seconds
                sub.start()
            self._subchannels[key] = sub
            if sub.endpoint != endpoint:
                sub.update(endpoint)
        self._outlier.track(self._subchannels)
        log.info("target %s: %d endpoint(s) from %s", self.target, len(wanted), snapshot.source)
        if self._stall_tick is None and self._stall.enabled:
            self._stall_tick = ticker.every(self._stall.check_interval_seconds, self._tick)
        self._rebuild()

    def _drain(self, sub: Subchannel) -> None:
        sub.set_draining()
        self._draining[sub.key] = sub
        self._close_if_idle(sub)

    def _close_if_idle(self, sub: Subchannel) -> None:
        if sub.draining and sub.in_flight == 0 and self._draining.get(sub.key) is sub:
            del self._draining[sub.key]
            task = asyncio.get_running_loop().create_task(sub.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    # Picker side.
    def _on_change(self, _sub: Subchannel) -> None:
        # Coalesce: many subchannels changing in one loop tick (a cold start of
        # 1,000 endpoints) cost one rebuild, not one each.
        if not self._rebuild_scheduled:
            self._rebuild_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_rebuild)

    def _scheduled_rebuild(self) -> None:
        if self._rebuild_scheduled:  # not done on demand by ready_count() meanwhile
            self._rebuild()

    def _rebuild(self) -> None:
        self._rebuild_scheduled = False
        subs = self._subchannels.values()
        ready = [s for s in subs if s.pickable]
        self._notice_lost(ready)
        zone_total = 0
        if self.zone_policy is not None and self.zone_policy.zone is not None:
            zone_total = sum(1 for s in subs if s.zone == self.zone_policy.zone)
        self.picker = build_picker(
            self._policy, ready, zone_policy=self.zone_policy, zone_total=zone_total
        )
        self._publish_gauges()
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def _notice_lost(self, ready: list[Subchannel]) -> None:
        """An endpoint that discovery still lists stopped serving (draining, crashed):
        membership is probably changing, so ask discovery to look again now."""
        keys = frozenset(s.key for s in ready)
        lost = [
            k
            for k in self._ready_keys - keys
            if (sub := self._subchannels.get(k)) is not None and not sub.ejected
        ]
        self._ready_keys = keys
        if lost and self._on_endpoint_lost is not None:
            log.debug("target %s: %s stopped serving; resolving again", self.target, lost)
            self._on_endpoint_lost()

    def _publish_gauges(self) -> None:
        counts = Counter(_state_label(s) for s in self._subchannels.values())
        counts["draining"] = len(self._draining)
        states = ("ready", "connecting", "not_serving", "ejected", "stalled", "failing", "draining")
        for state in states:
            self._metrics.endpoints.labels(self.target, state).set(counts.get(state, 0))

    async def wait_for_change(self, timeout: float | None) -> None:
        """Wait until the picker is rebuilt (or the timeout passes)."""
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    def pick(self, exclude: Collection[str] = ()) -> Subchannel | None:
        return self.picker.pick(exclude)

    # Outcome side (every attempt reports here exactly once).
    @property
    def failing(self) -> set[str]:
        """Keys of endpoints with failures counted (outlier detection): a success
        on one of them must reach :meth:`done`. The same set for the balancer's life."""
        return self._outlier.failing

    def done(self, sub: Subchannel, code: grpc.StatusCode) -> None:
        """An attempt on ``sub`` ended with ``code``."""
        in_flight = sub.in_flight = sub.in_flight - 1
        if code is _OK:  # the common case, without hashing an Enum (Python code)
            # Router.finish_ok inlines this branch's common case: keep in step.
            sub.silence.answers += 1  # counted; the periodic check stamps it (stall.py)
            if sub.stalled:
                sub.set_stalled(False)
            if sub.key in self._outlier.failing:
                self._outlier.success(sub.key)
            if sub.draining:
                self._close_if_idle(sub)
            return
        if code in _NO_ANSWER:
            sub.silence.unanswered(time.monotonic(), in_flight)
        elif code is grpc.StatusCode.CANCELLED:
            sub.silence.released(in_flight)
        else:
            sub.silence.answers += 1
            if sub.stalled:  # proof of life: back in the picker at once
                sub.set_stalled(False)
        if code in _ENDPOINT_FAILURES:
            if self._outlier.failure(sub.key):
                log.warning("ejecting %s after repeated failures", sub.key)
                self._metrics.ejections.labels(self.target).inc()
                sub.set_ejected(True)
                self._schedule_release()
        elif code not in _NEUTRAL:
            self._outlier.success(sub.key)
        if sub.draining:
            self._close_if_idle(sub)

    def answered(self, sub: Subchannel) -> None:
        """A response message arrived from ``sub`` (a stream making progress)."""
        sub.silence.answers += 1
        if sub.stalled:
            sub.set_stalled(False)

    # Silence detection (stall.py): set aside, probe, reconnect, return.
    def _tick(self) -> None:
        """Every ``check_interval_seconds`` (:mod:`ecsgrpc.balancing.ticker`: not a
        sleeping task, whose timer every loop iteration would pay for)."""
        self._check_silence(time.monotonic())

    def _check_silence(self, now: float) -> None:
        subs = self._subchannels
        owed = stalled = False
        for sub in subs.values():
            silence = sub.silence
            if silence.answers or sub.in_flight:  # answers counted since the last check
                silence.check(now, sub.in_flight)
            else:  # silence.check(now, 0) when nothing happened (the idle endpoint)
                silence.checked = now
            owed = owed or silence.owed_since is not None
            stalled = stalled or sub.stalled
        for sub in self._draining.values():  # kept true in case discovery lists it again
            sub.silence.check(now, sub.in_flight)
        if stalled:  # stalled, drained, then listed again: probe it again
            for sub in subs.values():
                if sub.stalled and sub.key not in self._probes:
                    self._start_probe(sub, 0.0)
        if not owed:  # nobody owes an answer: nothing can be silent (the idle case)
            return
        members = [Member(s.key, s.silence, s.stalled or s.ejected) for s in subs.values()]
        for key in find_stalled(members, now, self._stall):
            sub = subs[key]
            if sub.connectivity is not Connectivity.READY or sub.draining:
                continue
            silent = sub.silence.silent_for(now)
            log.warning(
                "setting %s aside: no answer for %.2fs (%d call(s) in flight) while "
                "other endpoints answer",
                key,
                silent,
                sub.in_flight,
            )
            self._metrics.stalls.labels(self.target).inc()
            sub.set_stalled(True)
            self._start_probe(sub, silent)

    def _start_probe(self, sub: Subchannel, silent: float) -> None:
        key = sub.key
        task = asyncio.get_running_loop().create_task(self._probe_back(sub, silent))
        self._probes[key] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._probes.get(key) is done:
                del self._probes[key]

        task.add_done_callback(forget)

    async def _probe_back(self, sub: Subchannel, silent: float) -> None:
        """Probe a stalled endpoint until it answers; reconnect while it does not."""
        config = self._stall
        started = time.monotonic()
        reconnect_at = started + config.reconnect_after_seconds
        first = True
        while sub.stalled and self._subchannels.get(sub.key) is sub:
            if await sub.probe(config.probe_timeout_seconds):
                now = time.monotonic()
                if first:  # alive all along: its calls are just slow; learn that
                    sub.silence.excuse(now, sub.in_flight, silent, config)
                else:
                    sub.silence.reset(now, sub.in_flight)
                log.info("%s answers again after %.2fs set aside", sub.key, now - started)
                sub.set_stalled(False)
                return
            first = False
            if time.monotonic() >= reconnect_at:
                log.info("%s still silent: opening a fresh connection", sub.key)
                await sub.reconnect(_RETIRE_GRACE_SECONDS)
                reconnect_at = time.monotonic() + config.reconnect_after_seconds
            await asyncio.sleep(config.probe_interval_seconds)

    def _schedule_release(self) -> None:
        when = self._outlier.next_release()
        if when is None:
            return
        if self._release_timer is not None:
            self._release_timer.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, when - self._outlier.now())
        self._release_timer = loop.call_later(delay, self._release)

    def _release(self) -> None:
        self._release_timer = None
        for key in self._outlier.release_expired():
            sub = self._subchannels.get(key)
            if sub is not None:
                log.info("returning %s after ejection", key)
                sub.set_ejected(False)
        self._schedule_release()

    # Introspection.
    def statuses(self) -> tuple[EndpointStatus, ...]:
        subs = [*self._subchannels.values(), *self._draining.values()]
        return tuple(s.status() for s in sorted(subs, key=lambda s: s.key))

    def ready_count(self) -> int:
        """Endpoints that take calls; pick() agrees (a pending picker rebuild is done now)."""
        if self._rebuild_scheduled:
            self._rebuild()
        return sum(1 for s in self._subchannels.values() if s.pickable)

    def endpoint_count(self) -> int:
        """How many endpoints discovery currently lists (any state)."""
        return len(self._subchannels)

    def describe(self) -> str:
        """One line for errors: how many endpoints and in which states."""
        if not self.resolved:
            return "no endpoints resolved yet"
        subs = list(self._subchannels.values())
        if not subs:
            return f"discovery ({self.snapshot_source}) returned no endpoints"
        if len(subs) <= 5:
            parts = ", ".join(
                f"{s.key} {s.connectivity.value}/health {s.health.value}"
                + (" ejected" if s.ejected else "")
                + (" stalled" if s.stalled else "")
                for s in subs
            )
        else:
            counts = Counter(_state_label(s) for s in subs)
            parts = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        return f"{len(subs)} endpoint(s): {parts}"

    def connectivity(self) -> grpc.ChannelConnectivity:
        subs = self._subchannels.values()
        if any(s.pickable for s in subs):
            return grpc.ChannelConnectivity.READY
        if any(s.connectivity in (Connectivity.CONNECTING, Connectivity.READY) for s in subs):
            return grpc.ChannelConnectivity.CONNECTING
        if any(s.connectivity is Connectivity.TRANSIENT_FAILURE for s in subs):
            return grpc.ChannelConnectivity.TRANSIENT_FAILURE
        return grpc.ChannelConnectivity.IDLE

    async def aclose(self) -> None:
        if self._release_timer is not None:
            self._release_timer.cancel()
        if self._stall_tick is not None:
            self._stall_tick.cancel()
        jobs = [*self._probes.values()]
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        subs = [*self._subchannels.values(), *self._draining.values()]
        self._subchannels.clear()
        self._draining.clear()
        await asyncio.gather(*(s.aclose() for s in subs), *self._closing, return_exceptions=True)
        self._rebuild()


def _state_label(sub: Subchannel) -> str:
    if sub.pickable:
        return "ready"
    if sub.ejected:
        return "ejected"
    if sub.stalled:
        return "stalled"
    if sub.connectivity is Connectivity.READY and sub.health.value == "not_serving":
        return "not_serving"
    if sub.connectivity is Connectivity.TRANSIENT_FAILURE:
        return "failing"
    return "connecting"
