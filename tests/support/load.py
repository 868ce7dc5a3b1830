"""Steady concurrent load through a channel, recording every call's outcome."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import grpc

from ecsgrpc.errors import StreamInterrupted
from ecsgrpc_apps.workflow import pb2, pb2_grpc


@dataclass
class Outcome:
    kind: str
    started: float
    finished: float = 0.0
    served_by: str = ""
    error: str | None = None  # status code name
    interrupted: bool = False  # StreamInterrupted (failed after output)
    sequences: list[int] = field(default_factory=list)


def conversation(words: int, cid: str) -> pb2.ConversationRequest:
    return pb2.ConversationRequest(
        conversation_id=cid,
        messages=[pb2.Message(role="user", content=" ".join(f"w{i}" for i in range(words)))],
    )


async def unary_call(stub: Any, timeout: float = 5.0) -> Outcome:
    out = Outcome("unary", time.monotonic())
    try:
        info = await stub.DescribeAgent(pb2.DescribeAgentRequest(), timeout=timeout)
        out.served_by = info.instance_id
    except grpc.aio.AioRpcError as exc:
        out.error = exc.code().name
    out.finished = time.monotonic()
    return out


async def stream_call(stub: Any, words: int, cid: str, timeout: float = 10.0) -> Outcome:
    out = Outcome("stream", time.monotonic())
    try:
        async for event in stub.ProcessConversation(conversation(words, cid), timeout=timeout):
            out.served_by = event.served_by
            out.sequences.append(event.sequence)
    except StreamInterrupted as exc:
        out.error = exc.code().name
        out.interrupted = True
    except grpc.aio.AioRpcError as exc:
        out.error = exc.code().name
    out.finished = time.monotonic()
    return out


class Load:
    """Run ``concurrency`` workers per kind until :meth:`stop`."""

    def __init__(self, channel: Any, *, unary: int = 4, streams: int = 4, words: int = 5) -> None:
        self._stub = pb2_grpc.WorkflowAgentStub(channel)
        self._unary = unary
        self._streams = streams
        self._words = words
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.outcomes: list[Outcome] = []

    def start(self) -> None:
        for i in range(self._unary):
            self._tasks.append(asyncio.create_task(self._worker("unary", i)))
        for i in range(self._streams):
            self._tasks.append(asyncio.create_task(self._worker("stream", i)))

    async def _worker(self, kind: str, index: int) -> None:
        n = 0
        while not self._stopping.is_set():
            n += 1
            if kind == "unary":
                outcome = await unary_call(self._stub)
            else:
                outcome = await stream_call(self._stub, self._words, f"s{index}-{n}")
            self.outcomes.append(outcome)
            await asyncio.sleep(0.001)

    async def stop(self) -> list[Outcome]:
        self._stopping.set()
        await asyncio.wait_for(asyncio.gather(*self._tasks), 30)
        return self.outcomes

    async def __aenter__(self) -> Load:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self._stopping.is_set():
            await self.stop()
