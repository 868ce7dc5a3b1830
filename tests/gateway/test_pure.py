"""The gateway's pure parts: SSE framing, media types, lifecycle table, status mapping."""

from __future__ import annotations

import grpc
import pytest

from ecsgrpc.errors import NoEndpointAvailable, StreamInterrupted
from ecsgrpc_apps.gateway.errors import from_grpc
from ecsgrpc_apps.gateway.lifecycle import GatewayState, Lifecycle, can_transition
from ecsgrpc_apps.gateway.limits import is_json_media_type
from ecsgrpc_apps.gateway.sse import sse_frame

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
