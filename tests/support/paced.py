"""Open-loop load: calls start on a fixed schedule whatever happens to earlier ones.

A silent endpoint holds its calls until their deadline; a closed-loop worker
stuck on one would slow the arrivals and hide the fault, so fault tests use
this. Every call's start, end, serving agent and status code are recorded.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ecsgrpc_apps.workflow import pb2_grpc
from tests.support.load import Outcome, stream_call, unary_call


class PacedLoad:
    """``rate`` calls a second; every ``stream_every``-th one a 5-event stream."""

    def __init__(
        self,
        channel: Any,
        *,
        rate: float = 100.0,
        stream_every: int = 10,
        unary_timeout: float = 2.0,
        stream_timeout: float = 5.0,
    ) -> None:
        self._stub = pb2_grpc.WorkflowAgentStub(channel)
        self._rate = rate
        self._stream_every = stream_every
        self._unary_timeout = unary_timeout
        self._stream_timeout = stream_timeout
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self.outcomes: list[Outcome] = []

    async def __aenter__(self) -> PacedLoad:
        self._runner = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while True:
            n += 1
            task = asyncio.create_task(self._one(n))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            next_at += 1 / self._rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _one(self, n: int) -> None:
        if n % self._stream_every == 0:
            outcome = await stream_call(self._stub, 3, f"p{n}", timeout=self._stream_timeout)
        else:
            outcome = await unary_call(self._stub, timeout=self._unary_timeout)
        self.outcomes.append(outcome)

    async def stop(self) -> list[Outcome]:
        """Start no more calls; wait for those in flight (their deadlines bound it)."""
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
            self._runner = None
        if self._tasks:
            await asyncio.wait_for(asyncio.gather(*self._tasks), self._stream_timeout + 10)
        return self.outcomes
