"""A subchannel: one ``grpc.aio`` channel to one endpoint, with its health.

States (connectivity is grpc's; health is ``grpc.health.v1`` Watch, gRFC A17)::

    IDLE -> CONNECTING -> READY <-> TRANSIENT_FAILURE -> ... -> SHUTDOWN
    health: UNKNOWN -> SERVING <-> NOT_SERVING (UNKNOWN again when the watch breaks)

A subchannel takes new calls (is *pickable*) only when connected (READY), its
health is SERVING (or health checking is off, or the server has no health
service), it is not ejected by outlier detection, it is not *stalled* (silent
while it owes answers and others answer: see ``stall.py``), and discovery has
not removed it (*draining*: it finishes its in-flight calls, then closes).
Every change calls ``on_change`` so the balancer can rebuild its picker.

*Presumed health*: an endpoint that discovery itself reports healthy (the
``health`` attribute is ``HEALTHY``: Cloud Map's ``HealthStatus``, ECS's task
``healthStatus``) is pickable once READY while its health Watch has not yet
given its first answer, as gRPC's xDS clients trust EDS health (gRFC A42).
The Watch still runs: its first answer (SERVING or NOT_SERVING), or its first
failure, ends the presumption, and from then on only the Watch decides. Why:
the first answer of a stream is several completion-queue round trips away,
each slowed by whatever slows the client (measured in a CPU-starved client:
2.8-11 s after the connection was READY, against a poll + 1 s promise for a
new task), while discovery has already checked this task's health. Endpoints
without that attribute (static lists, DNS) wait for the Watch, as gRFC A17
says.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecsgrpc.balancing import ticker
from ecsgrpc.balancing.stall import Silence
from ecsgrpc.balancing.status import EndpointStatus
from ecsgrpc.endpoints import ATTR_HEALTH, Endpoint
from ecsgrpc.security.diagnose import last_error

NATIVE_UNARY = "unary_unary:native"  # callables' key kind for native_unary()

__all__ = ["Connectivity", "Health", "Subchannel"]

log = logging.getLogger(__name__)


class Connectivity(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    READY = "ready"
    TRANSIENT_FAILURE = "transient_failure"
    SHUTDOWN = "shutdown"


_FROM_GRPC = {
    grpc.ChannelConnectivity.IDLE: Connectivity.IDLE,
    grpc.ChannelConnectivity.CONNECTING: Connectivity.CONNECTING,
    grpc.ChannelConnectivity.READY: Connectivity.READY,
    grpc.ChannelConnectivity.TRANSIENT_FAILURE: Connectivity.TRANSIENT_FAILURE,
    grpc.ChannelConnectivity.SHUTDOWN: Connectivity.SHUTDOWN,
}


_FAILING = (Connectivity.CONNECTING, Connectivity.TRANSIENT_FAILURE)
# How often the connectivity watch looks at the channel even without a grpc event.
RECHECK_SECONDS = 0.5
# While a connection is first being made, look that often (for at most
# FIRST_RECHECK_FOR_SECONDS): in a CPU-starved client grpc.aio's state watch
# reported READY later than the 0.5 s recheck did (READY seen 0.57-0.7 s after
# the subchannel started, every time, against about 0.1 s when not starved), and
# a new endpoint's first call waits for it.
FIRST_RECHECK_SECONDS = 0.1
FIRST_RECHECK_FOR_SECONDS = 5.0


# Probe outcomes that are not an answer of the server's own.
_NO_ANSWER = frozenset(
    {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
)


class Health(enum.Enum):
    UNKNOWN = "unknown"
    SERVING = "serving"
    NOT_SERVING = "not_serving"


ChannelFactory = Callable[[str], grpc.aio.Channel]

# The value of the ``health`` attribute by which discovery vouches for an endpoint
# (Cloud Map's HealthStatus, ECS's task healthStatus).
_DISCOVERY_HEALTHY = "HEALTHY"


def _vouched(endpoint: Endpoint) -> bool:
    return endpoint.attributes.get(ATTR_HEALTH) == _DISCOVERY_HEALTHY


class Subchannel:
    """One endpoint's connection and health. Used from one event loop."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        channel_factory: ChannelFactory,
        on_change: Callable[[Subchannel], None],
        health_check: bool = True,
        health_service: str = "",
    ) -> None:
        self.endpoint = endpoint
        self._weight = endpoint.weight  # parsed once: pickers read it on every call
        self.key = endpoint.address
        self.in_flight = 0
        self.connectivity = Connectivity.IDLE
        self.health = Health.UNKNOWN if health_check else Health.SERVING
        # Health presumed from discovery until the Watch first answers (module docstring).
        self._watch_answered = False
        self.presumed = health_check and _vouched(endpoint)
        self.draining = False
        self.ejected = False
        self.stalled = False
        self.silence = Silence()
        self.last_error: str | None = None
        self._diagnosis: asyncio.Task[None] | None = None
        self._health_check = health_check
        self._health_service = health_service
        self._on_change = on_change
        self._factory = channel_factory
        self._channel: grpc.aio.Channel = channel_factory(self.key)
        self._retired: dict[asyncio.Task[None], grpc.aio.Channel] = {}
        self.callables: dict[tuple[str, str], Any] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # What pickers read (see picker.Candidate).
    @property
    def weight(self) -> int:
        return self._weight

    @property
    def zone(self) -> str | None:
        return self.endpoint.zone

    @property
    def pickable(self) -> bool:
        return (
            self.connectivity is Connectivity.READY
            and (self.health is Health.SERVING or (self.presumed and self.health is Health.UNKNOWN))
            and not self.ejected
            and not self.stalled
            and not self.draining
        )

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._watch_connectivity()))
        if self._health_check:
            self._tasks.append(loop.create_task(self._watch_health()))

    def set_stalled(self, stalled: bool) -> None:
        if self.stalled != stalled:
            self.stalled = stalled
            self._changed()

    async def probe(self, timeout: float) -> bool:
        """Whether the server answers a ``grpc.health.v1`` Check within ``timeout``.

        Any answer of the server's own counts (NOT_SERVING is the health
        watch's business; UNIMPLEMENTED means no health service, but a live
        server); a deadline or a connection failure does not.
        """
        try:
            await health_pb2_grpc.HealthStub(self._channel).Check(
                health_pb2.HealthCheckRequest(service=self._health_service),
                wait_for_ready=True,
                timeout=timeout,
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code() not in _NO_ANSWER
        return True

    async def reconnect(self, grace: float) -> None:
        """Replace the connection with a fresh one (a new TCP connection).

        The old channel takes no new calls; its calls in flight may finish
        within ``grace`` seconds, then it is closed. Connectivity and health
        are watched on the new one from scratch.
        """
        if self._closed:
            return
        old, old_tasks = self._channel, self._tasks
        self._channel = self._factory(self.key)
        self.callables = {}
        self._tasks = []
        for task in old_tasks:
            task.cancel()
        await asyncio.gather(*old_tasks, return_exceptions=True)
        if self._health_check:
            self.health = Health.UNKNOWN
        self.connectivity = Connectivity.IDLE
        self._changed()
        retire = asyncio.get_running_loop().create_task(old.close(grace))
        self._retired[retire] = old
        retire.add_done_callback(lambda t: self._retired.pop(t, None))
        self.start()

    def multicallable(self, kind: str, method: str, serializer: Any, deserializer: Any) -> Any:
        """The underlying channel's multicallable for ``method``, cached in
        ``callables[kind, method]`` (the call path reads that first)."""
        found = self.callables.get((kind, method))
        if found is None:
            factory = getattr(self._channel, kind)
            found = factory(
                method,
                request_serializer=serializer,
                response_deserializer=deserializer,
                _registered_method=True,
            )
            self.callables[(kind, method)] = found
        return found

    def native_unary(
        self, method: str, serializer: Any, deserializer: Any
    ) -> tuple[Any, Callable[[Any], Any] | None]:
        """For a unary call that is grpc.aio's own call (``balancing/unary.py``): the
        grpc.aio multicallable of ``method`` on this endpoint's grpc.aio channel, and
        the function that adds the channel's per-call metadata (a bearer token) to a
        call's, None without. Cached in ``callables[NATIVE_UNARY, method]``."""
        found = self.callables.get((NATIVE_UNARY, method))
        if found is None:
            channel = self._channel
            merge = None
            if not isinstance(channel, grpc.aio.Channel):  # security's MetadataChannel
                merge = channel.merged
                channel = channel.raw
            found = (
                channel.unary_unary(
                    method,
                    request_serializer=serializer,
                    response_deserializer=deserializer,
                    _registered_method=True,
                ),
                merge,
            )
            self.callables[(NATIVE_UNARY, method)] = found
        return found

    def update(self, endpoint: Endpoint) -> None:
        """New attributes for the same address (zone, weight, ...)."""
        self.endpoint = endpoint
        self._weight = endpoint.weight
        self.presumed = self._health_check and not self._watch_answered and _vouched(endpoint)
        self._changed()

    def set_draining(self) -> None:
        if not self.draining:
            self.draining = True
            self._changed()

    def set_ejected(self, ejected: bool) -> None:
        if self.ejected != ejected:
            self.ejected = ejected
            self._changed()

    def status(self) -> EndpointStatus:
        return EndpointStatus(
            address=self.key,
            instance_id=self.endpoint.instance_id,
            zone=self.endpoint.zone,
            state=self.connectivity.value,
            health=self.health.value,
            health_presumed=self.presumed,
            in_flight=self.in_flight,
            ejected=self.ejected,
            stalled=self.stalled,
            draining=self.draining,
            pickable=self.pickable,
            last_error=self.last_error,
        )

    async def aclose(self) -> None:
        """Stop watching and close the connection (cancels calls still on it)."""
        if self._closed:
            return
        self._closed = True
        tasks = [*self._tasks, *([self._diagnosis] if self._diagnosis else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._channel.close()
        retired = dict(self._retired)
        for retire in retired:
            retire.cancel()  # a retiring channel's close(grace) is cut short: close it now
        await asyncio.gather(*retired, return_exceptions=True)
        for old in retired.values():
            await old.close()
        self.connectivity = Connectivity.SHUTDOWN

    def _changed(self) -> None:
        if not self._closed:
            self._on_change(self)

    async def _watch_connectivity(self) -> None:
        channel = self._channel
        previous = Connectivity.IDLE
        watch: asyncio.Task[None] | None = None
        watched = None
        loop = asyncio.get_running_loop()
        poke: asyncio.Future[None] = loop.create_future()

        def recheck() -> None:
            if not poke.done():
                poke.set_result(None)

        # The recheck comes from the ticker's clock thread, not a timer on the loop.
        tick = ticker.every(FIRST_RECHECK_SECONDS, recheck)
        fast_until = time.monotonic() + FIRST_RECHECK_FOR_SECONDS
        try:
            while True:
                previous = self._observe(previous)
                if previous is Connectivity.SHUTDOWN:
                    return
                if fast_until and (previous is Connectivity.READY or time.monotonic() > fast_until):
                    tick.cancel()
                    tick = ticker.every(RECHECK_SECONDS, recheck)
                    fast_until = 0.0
                # grpc.aio sometimes never completes a state watch (seen here: a
                # channel in TRANSIENT_FAILURE while its watch still waited on
                # IDLE), so look again every RECHECK_SECONDS, and replace a watch
                # that missed a change.
                raw = channel.get_state()
                if watch is None or watch.done() or raw is not watched:
                    if watch is not None:
                        watch.cancel()
                    watch = asyncio.get_running_loop().create_task(
                        channel.wait_for_state_change(raw)
                    )
                    watched = raw
                if poke.done():
                    poke = loop.create_future()
                await asyncio.wait({watch, poke}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            tick.cancel()
            if watch is not None:
                watch.cancel()

    def _observe(self, previous: Connectivity) -> Connectivity:
        """Read the channel's state, publish a change, start a diagnosis after a failure."""
        channel = self._channel
        # try_to_connect: leave IDLE at once (after a GOAWAY or idle timeout).
        state = _FROM_GRPC[channel.get_state(try_to_connect=True)]
        if state is not self.connectivity:
            self.connectivity = state
            if state is Connectivity.READY:
                self.last_error = None
            self._changed()
        # CONNECTING seen twice in a row: a TRANSIENT_FAILURE came and went between.
        failed = state is Connectivity.TRANSIENT_FAILURE or (
            state is Connectivity.CONNECTING and previous in _FAILING
        )
        if failed and self._diagnosis is None:
            self._diagnosis = asyncio.get_running_loop().create_task(self._learn_last_error())
        return state

    async def _learn_last_error(self) -> None:
        """Ask grpc why the connection failed: a call that does not wait for
        ready fails at once with the last connection error (no network I/O)."""
        try:
            await self._ask_last_error()
        finally:
            self._diagnosis = None

    async def _ask_last_error(self) -> None:
        try:
            await health_pb2_grpc.HealthStub(self._channel).Check(
                health_pb2.HealthCheckRequest(service=self._health_service),
                wait_for_ready=False,
                timeout=1.0,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.UNAVAILABLE:
                error = last_error(exc.details() or "")
                if error != self.last_error:  # log each new reason once
                    log.info("cannot connect to %s: %s", self.key, error)
                self.last_error = error

    async def _watch_health(self) -> None:
        stub = health_pb2_grpc.HealthStub(self._channel)
        request = health_pb2.HealthCheckRequest(service=self._health_service)
        delay = 0.05
        while True:
            try:
                async for reply in stub.Watch(request, wait_for_ready=True):
                    delay = 0.05
                    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
                    self._set_health(Health.SERVING if serving else Health.NOT_SERVING)
            except grpc.aio.AioRpcError as exc:
                if exc.code() is grpc.StatusCode.UNIMPLEMENTED:
                    # No health service: judge by the connection alone (gRFC A17).
                    self._set_health(Health.SERVING)
                    return
                log.debug("health watch of %s ended: %s", self.key, exc.code())
            self._end_presumption()  # a Watch that fails before answering ends it too
            self._set_health(Health.UNKNOWN)
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311
            delay = min(delay * 2, 1.0)

    def _end_presumption(self) -> None:
        """The Watch failed before answering: from now on only the Watch decides."""
        self._watch_answered = True
        if self.presumed:
            self.presumed = False
            self._changed()

    def _set_health(self, health: Health) -> None:
        changed = health is not self.health
        self.health = health
        if not self._watch_answered:  # the Watch's first answer ends the presumption
            self._watch_answered = True
            changed = changed or self.presumed
            self.presumed = False
        if changed:
            self._changed()
