"""The gateway's pure parts: SSE framing, media types, lifecycle table, status mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from ecsgrpc.errors import NoEndpointAvailable, StreamInterrupted
from ecsgrpc_apps.gateway.errors import from_grpc
from ecsgrpc_apps.gateway.lifecycle import GatewayState, Lifecycle, can_transition
from ecsgrpc_apps.gateway.limits import is_json_media_type
from ecsgrpc_apps.gateway.sse import (
    ClientGone,
    DisconnectWatcher,
    EventStreamResponse,
    LastFrame,
    sse_frame,
)

pytestmark = pytest.mark.timeout(10)


def test_sse_frames_carry_event_id_and_one_data_line_per_line() -> None:
    assert sse_frame('{"a":1}', event_id="3") == b'id: 3\ndata: {"a":1}\n\n'
    assert sse_frame("x", event="done") == b"event: done\ndata: x\n\n"
    assert sse_frame("one\ntwo") == b"data: one\ndata: two\n\n"
    assert sse_frame("") == b"data: \n\n"


@pytest.mark.parametrize(
    ("content_type", "json"),
    [
        (None, True),
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/merge-patch+json", True),
        ("text/json", False),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
    ],
)
def test_json_media_types(content_type: str | None, json: bool) -> None:
    assert is_json_media_type(content_type) is json


def test_lifecycle_moves_only_along_the_table() -> None:
    life = Lifecycle()
    assert life.state is GatewayState.STARTING and not life.serving
    assert not life.move(GatewayState.DRAINING)  # not before serving
    assert life.move(GatewayState.SERVING) and life.serving
    assert life.move(GatewayState.DRAINING) and not life.serving
    assert not life.move(GatewayState.SERVING)  # never back
    life.stop()
    assert life.state is GatewayState.STOPPED
    assert not can_transition(GatewayState.STOPPED, GatewayState.SERVING)


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (StreamInterrupted(grpc.StatusCode.DEADLINE_EXCEEDED, "late"), 504, "deadline_exceeded"),
        (StreamInterrupted(grpc.StatusCode.UNAVAILABLE, "gone"), 503, "unavailable"),
        (NoEndpointAvailable(grpc.StatusCode.DEADLINE_EXCEEDED, "none"), 503, "no_endpoint"),
        (NoEndpointAvailable(grpc.StatusCode.UNAVAILABLE, "none"), 503, "no_endpoint"),
        (StreamInterrupted(grpc.StatusCode.DATA_LOSS, "x"), 502, "data_loss"),
    ],
)
def test_library_errors_map_like_their_status(
    exc: grpc.aio.AioRpcError, status: int, code: str
) -> None:
    err = from_grpc(exc)
    assert (err.status, err.code) == (status, code)
    assert err.body().error.status == status


def test_accept_errors_are_logged_at_most_once_a_second(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import errno

    from ecsgrpc_apps.gateway.connections import rate_limited_accept_errors

    now = [0.0]
    loop = asyncio.new_event_loop()
    try:
        rate_limited_accept_errors(loop, clock=lambda: now[0])
        error = OSError(errno.EMFILE, "Too many open files")
        with caplog.at_level("ERROR"):
            for step in range(3000):  # 3,000 errors over 3 seconds
                now[0] = step / 1000
                loop.call_exception_handler(
                    {"message": "socket.accept() out of system resource", "exception": error}
                )
        lines = [r for r in caplog.records if "socket.accept()" in r.getMessage()]
        assert len(lines) == 3
        assert "999 more like it" in lines[1].getMessage()
    finally:
        loop.close()


class _Connection:
    """An ASGI ``receive`` after the body: it answers only ``http.disconnect``."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.closed.wait()
        return {"type": "http.disconnect"}


async def test_the_watcher_turns_a_disconnect_during_a_step_into_client_gone() -> None:
    conn = _Connection()
    watcher = DisconnectWatcher(conn.receive)

    async def serve() -> str:
        assert await watcher.run(asyncio.sleep(0, "first")) == "first"
        try:
            await watcher.run(asyncio.sleep(30))
        except ClientGone:
            await asyncio.sleep(0)  # the request's task was not left cancelled
            return "gone"
        finally:
            await watcher.close()
        return "not gone"

    task = asyncio.create_task(serve())
    await asyncio.sleep(0.05)
    conn.closed.set()
    assert await asyncio.wait_for(task, 5) == "gone"


async def test_the_watcher_leaves_a_cancellation_from_elsewhere_a_cancellation() -> None:
    watcher = DisconnectWatcher(_Connection().receive)

    async def serve() -> None:
        try:
            await watcher.run(asyncio.sleep(30))
        finally:
            await watcher.close()

    task = asyncio.create_task(serve())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


async def test_a_disconnect_between_steps_cancels_nothing_and_fails_the_next_step() -> None:
    conn = _Connection()
    watcher = DisconnectWatcher(conn.receive)

    async def serve() -> str:
        await watcher.run(asyncio.sleep(0))
        conn.closed.set()
        await asyncio.sleep(0.05)  # not in a step: not cancelled here
        try:
            await watcher.run(asyncio.sleep(30))
        except ClientGone:
            return "gone at once"
        finally:
            await watcher.close()
        return "ran"

    assert await asyncio.wait_for(serve(), 5) == "gone at once"


async def _messages(*frames: bytes) -> list[dict[str, Any]]:
    """The ASGI messages an EventStreamResponse of ``frames`` sends."""

    async def stream() -> AsyncIterator[bytes]:
        for frame in frames:
            yield frame

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    response = EventStreamResponse(stream(), DisconnectWatcher(_Connection().receive))
    await response({"type": "http"}, _Connection().receive, send)  # type: ignore[arg-type]
    return sent


async def test_the_last_frame_ends_the_body_in_the_same_message() -> None:
    """One write for the final frame and the end of the chunked body, not two."""
    first = sse_frame("a", event_id="1")
    done = sse_frame("{}", event="done", last=True)
    assert isinstance(done, LastFrame) and done == b"event: done\ndata: {}\n\n"
    sent = await _messages(first, done)
    assert [(m["type"], m.get("body"), m.get("more_body")) for m in sent] == [
        ("http.response.start", None, None),
        ("http.response.body", first, True),
        ("http.response.body", done, False),
    ]


async def test_a_stream_without_a_last_frame_still_ends_its_body() -> None:
    first = sse_frame("a", event_id="1")
    sent = await _messages(first)
    assert [(m.get("body"), m.get("more_body")) for m in sent[1:]] == [
        (first, True),
        (b"", False),
    ]
