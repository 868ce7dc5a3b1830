"""Conversations driven through the gateway's HTTP API, every answer checked.

A request counts as an error unless it returned 200 and its reply is exactly
the echo of what was sent (so a replayed stream, which would duplicate text,
is an error too).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

__all__ = ["Outcome", "Traffic"]


@dataclass(frozen=True, slots=True)
class Outcome:
    started: float
    finished: float
    mode: str  # json | sse
    status: int
    served_by: str
    error: str | None


class Traffic:
    """``workers`` concurrent loops POSTing conversations until :meth:`stop`."""

    def __init__(self, base_url: str, *, workers: int = 6, words: int = 8) -> None:
        self._url = base_url.rstrip("/") + "/v1/conversations"
        self._workers = workers
        self._words = words
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0))
        self.outcomes: list[Outcome] = []

    def start(self) -> None:
        for index in range(self._workers):
            self._tasks.append(asyncio.create_task(self._worker(index)))

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.gather(*self._tasks)
        await self._client.aclose()

    @property
    def errors(self) -> int:
        return sum(1 for o in self.outcomes if o.error)

    def served_by(self) -> Counter[str]:
        return Counter(o.served_by for o in self.outcomes if not o.error)

    async def _worker(self, index: int) -> None:
        n = 0
        while not self._stopping.is_set():
            n += 1
            mode = "sse" if (index + n) % 2 else "json"
            text = " ".join(f"w{index}-{n}-{i}" for i in range(self._words))
            self.outcomes.append(await self._one(mode, f"demo-{index}-{n}", text))

    async def _one(self, mode: str, cid: str, text: str) -> Outcome:
        body = {"conversation_id": cid, "messages": [{"role": "user", "content": text}]}
        started = time.monotonic()
        try:
            if mode == "sse":
                status, served_by, reply = await self._sse(body)
            else:
                status, served_by, reply = await self._json(body)
        except httpx.HTTPError as exc:
            return Outcome(started, time.monotonic(), mode, 0, "", f"http: {exc!r}")
        error = None
        if status != 200:
            error = f"HTTP {status}: {reply}"
        elif reply != text:
            error = "reply differs from the echo (lost or duplicated output)"
        return Outcome(started, time.monotonic(), mode, status, served_by, error)

    async def _json(self, body: Mapping[str, object]) -> tuple[int, str, str]:
        response = await self._client.post(self._url, json=body)
        if response.status_code != 200:
            return response.status_code, "", response.text[:300]
        data = response.json()
        return 200, str(data.get("served_by", "")), str(data.get("reply", ""))

    async def _sse(self, body: Mapping[str, object]) -> tuple[int, str, str]:
        headers = {"accept": "text/event-stream"}
        async with self._client.stream("POST", self._url, json=body, headers=headers) as resp:
            if resp.status_code != 200:
                return resp.status_code, "", (await resp.aread()).decode(errors="replace")[:300]
            return await _read_sse(resp)


async def _read_sse(response: httpx.Response) -> tuple[int, str, str]:
    """Assemble the reply; a sequence gap or repeat, or an error event, is a failure.

    ``event: reset`` (the agent died mid-stream; the gateway restarts the
    conversation elsewhere) discards what was received, as the chat page does.
    """
    served_by, parts, expected, event = "", [], 0, "message"
    async for line in response.aiter_lines():
        if not line:
            event = "message"  # a blank line ends a frame
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event == "message":
            data = json.loads(line[5:])
            if data.get("sequence") != expected:
                return 599, served_by, ""
            expected += 1
            served_by = data.get("served_by", served_by)
            parts.append(data.get("text", ""))
        elif line.startswith("data:") and event == "reset":
            parts, expected = [], 0  # the gateway restarts on another agent
        elif line.startswith("data:") and event == "error":
            return 502, served_by, line[5:].strip()
        elif line.startswith("data:") and event == "done":
            return 200, served_by, "".join(parts)
    return 598, served_by, ""  # stream ended without its done event
