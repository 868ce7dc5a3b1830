"""Load for the fault scenarios: calls at a steady rate, every outcome recorded.

:class:`PacedLoad` starts calls on a fixed schedule (open loop: a stalled
client does not slow the arrivals, as with real users), alternating unary
and streaming calls unless told otherwise, with a cap on calls in flight so
a client that hangs cannot exhaust the process. Each :class:`Call` keeps
which agent served it and, for a stream, every ``sequence`` number received:
a replayed stream shows repeated numbers (duplicated output).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from ecsgrpc.errors import EcsGrpcError
from ecsgrpc_apps.bench.contenders import Client, conversation

__all__ = ["Call", "PacedLoad", "percentile"]

STREAM_WORDS = 18  # 20 events: START + 18 deltas + COMPLETE


@dataclass
class Call:
    """One call's outcome; times are ``time.monotonic()``."""

    kind: str
    start: float
    end: float = 0.0
    error: str | None = None
    served_by: str = ""
    sequences: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def duplicated(self) -> int:
        """Events received more than once (a replay after output)."""
        return len(self.sequences) - len(set(self.sequences))

    @property
    def latency(self) -> float:
        return self.end - self.start


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def one_call(client: Client, kind: str, cid: str, timeout: float) -> Call:
    """Make one call and record what happened (never raises for a call failure)."""
    call = Call(kind, time.monotonic())
    try:
        if kind == "unary":
            call.served_by = await client.unary(timeout)
        else:
            async for event in client.stream(conversation(STREAM_WORDS, cid), timeout):
                call.served_by = event.served_by
                call.sequences.append(event.sequence)
            if len(set(call.sequences)) != STREAM_WORDS + 2:
                call.error = "SHORT_STREAM"
    except grpc.RpcError as exc:
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        call.error = code.name if code is not None else type(exc).__name__
    except (EcsGrpcError, ConnectionError) as exc:
        call.error = type(exc).__name__
    call.end = time.monotonic()
    return call


class PacedLoad:
    """``rate`` calls a second through ``client`` until :meth:`stop`."""

    def __init__(
        self,
        client: Client,
        *,
        rate: float,
        kinds: Sequence[str] = ("unary", "stream"),
        timeout: float = 15.0,
        max_in_flight: int = 400,
        unary_timeout: float | None = None,
    ) -> None:
        self.client = client
        self.rate = rate
        self.kinds = tuple(kinds)
        self.timeout = timeout
        self.unary_timeout = timeout if unary_timeout is None else unary_timeout
        self.max_in_flight = max_in_flight
        self.calls: list[Call] = []
        self.dropped = 0  # arrivals not started because max_in_flight calls were running
        self.max_late = 0.0  # seconds the most delayed call started after its scheduled time
        self.retry_marks: list[float] = []  # times the client's retry count went up
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._runner = loop.create_task(self._run())
        self._watcher = loop.create_task(self._watch_retries())

    async def _run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        n = 0
        while not self._stopping:
            now = time.monotonic()
            if now < next_at:
                await asyncio.sleep(next_at - now)
                continue
            self.max_late = max(self.max_late, now - next_at)
            next_at += interval
            n += 1
            if len(self._tasks) >= self.max_in_flight:
                self.dropped += 1
                continue
            kind = self.kinds[n % len(self.kinds)]
            task = asyncio.get_running_loop().create_task(self._call(kind, f"c{n}"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _call(self, kind: str, cid: str) -> None:
        timeout = self.unary_timeout if kind == "unary" else self.timeout
        self.calls.append(await one_call(self.client, kind, cid, timeout))

    async def _watch_retries(self) -> None:
        seen = self.client.retries()
        while not self._stopping:
            await asyncio.sleep(0.02)
            now = self.client.retries()
            if now > seen:
                self.retry_marks.append(time.monotonic())
                seen = now

    def halt(self) -> None:
        """Start no more calls (those in flight go on); :meth:`stop` collects them."""
        self._stopping = True

    async def stop(self, drain: float = 20.0) -> list[Call]:
        """Stop starting calls; wait up to ``drain`` s for those in flight (then cancel)."""
        self._stopping = True
        for job in (self._runner, self._watcher):
            if job is not None:
                await asyncio.gather(job, return_exceptions=True)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=drain)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        return self.calls
