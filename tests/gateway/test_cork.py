"""A response's head and first body bytes leave in one write (gateway/cork.py).

What is counted is the kernel's own: ``TCP_INFO``'s data segments sent
(``tcpi_data_segs_out``) or received (``tcpi_data_segs_in``) on a loopback
connection. uvicorn's transport has ``TCP_NODELAY`` set, so each write of a
small answer is one segment: two writes (head, then body) are two segments,
one joined write is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from collections.abc import AsyncIterator

import pytest

from ecsgrpc_apps.gateway.cork import HeadCork
from tests.gateway.test_hostile import address, gateway

pytestmark = pytest.mark.timeout(60)

# struct tcp_info (linux/tcp.h): tcpi_data_segs_in and tcpi_data_segs_out (Linux 4.6+).
_DATA_SEGS_IN_OUT = struct.Struct("=152x2I")


def data_segments(sock: socket.socket) -> tuple[int, int]:
    """(data segments received, data segments sent) on ``sock`` so far."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    segs_in, segs_out = _DATA_SEGS_IN_OUT.unpack_from(info)
    return segs_in, segs_out


@contextlib.asynccontextmanager
async def connection() -> AsyncIterator[tuple[asyncio.Transport, socket.socket]]:
    """A loopback TCP connection: this side's transport, the peer's plain socket."""
    listener = socket.create_server(("127.0.0.61", 0))
    peer: socket.socket | None = None
    try:
        loop = asyncio.get_running_loop()
        accept = loop.run_in_executor(None, listener.accept)
        transport, _ = await loop.create_connection(asyncio.Protocol, *listener.getsockname()[:2])
        peer = (await accept)[0]
        peer.setblocking(False)
        try:
            yield transport, peer
        finally:
            transport.close()
    finally:
        if peer is not None:
            peer.close()
        listener.close()


def sent(transport: asyncio.Transport) -> int:
    sock = transport.get_extra_info("socket")
    return data_segments(sock)[1]


async def read_exactly(peer: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        chunk = await asyncio.wait_for(loop.sock_recv(peer, size - len(data)), 5)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


async def test_a_head_and_the_body_after_it_are_one_segment() -> None:
    async with connection() as (transport, peer):
        cork = HeadCork(transport, asyncio.get_running_loop())
        before = sent(transport)
        cork.arm()
        cork.write(b"HEAD\r\n\r\n")
        assert cork.holding
        cork.write(b"body")
        assert not cork.holding
        assert await read_exactly(peer, 12) == b"HEAD\r\n\r\nbody"
        assert sent(transport) - before == 1


async def test_without_arming_every_write_is_its_own_segment() -> None:
    """The cork holds only a response's first write: later frames go at once."""
    async with connection() as (transport, peer):
        cork = HeadCork(transport, asyncio.get_running_loop())
        before = sent(transport)
        cork.write(b"one")
        assert not cork.holding
        cork.write(b"two")
        assert await read_exactly(peer, 6) == b"onetwo"
        assert sent(transport) - before == 2


async def test_a_held_head_with_nothing_after_it_goes_at_the_end_of_the_turn() -> None:
    async with connection() as (transport, peer):
        cork = HeadCork(transport, asyncio.get_running_loop())
        cork.arm()
        cork.write(b"HTTP/1.1 200 OK\r\n\r\n")
        assert cork.holding
        await asyncio.sleep(0)  # the rest of this turn, then the flush's
        await asyncio.sleep(0)
        assert not cork.holding
        assert await read_exactly(peer, 19) == b"HTTP/1.1 200 OK\r\n\r\n"


async def test_close_writes_what_is_held_first() -> None:
    async with connection() as (transport, peer):
        cork = HeadCork(transport, asyncio.get_running_loop())
        cork.arm()
        cork.write(b"last words")
        cork.close()
        assert await read_exactly(peer, 10) == b"last words"
        end = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(peer, 10), 5)
        assert end == b""  # then the end of the stream


async def test_a_second_arm_while_holding_keeps_the_order() -> None:
    async with connection() as (transport, peer):
        cork = HeadCork(transport, asyncio.get_running_loop())
        cork.arm()
        cork.write(b"a")
        cork.arm()
        cork.write(b"b")
        cork.write(b"c")
        assert await read_exactly(peer, 3) == b"abc"


def _request(body: bytes, accept: str) -> bytes:
    return (
        b"POST /v1/conversations HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
        b"accept: " + accept.encode() + b"\r\ncontent-length: %d\r\n\r\n" % len(body) + body
    )


def _complete(answer: bytes) -> bool:
    """True once ``answer`` holds a whole HTTP/1.1 response (Content-Length or chunked)."""
    head, found, body = answer.partition(b"\r\n\r\n")
    if not found:
        return False
    for line in head.lower().split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name == b"content-length":
            return len(body) >= int(value)
    return body.endswith(b"0\r\n\r\n")


async def _answer_segments(host: str, port: int, accept: str) -> tuple[bytes, int]:
    """One conversation on a fresh connection: the whole answer and its data segments."""
    body = json.dumps({"messages": [{"role": "user", "content": "a b c"}]}).encode()
    loop = asyncio.get_running_loop()
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.setblocking(False)
        before = data_segments(sock)[0]
        await loop.sock_sendall(sock, _request(body, accept))
        answer = b""
        deadline = time.monotonic() + 10
        while not _complete(answer):
            left = deadline - time.monotonic()
            assert left > 0, answer
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), left)
            assert chunk, answer
            answer += chunk
        return answer, data_segments(sock)[0] - before


@pytest.mark.parametrize("parser", ["httptools", "h11"])
async def test_a_json_answer_is_one_segment(parser: str) -> None:
    async with gateway(http_parser=parser) as gw:
        host, port = address(gw)
        answer, segments = await _answer_segments(host, port, "application/json")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), answer
        assert json.loads(body)["events"] == 5
        assert segments == 1, answer


@pytest.mark.parametrize("parser", ["httptools", "h11"])
async def test_an_sse_head_rides_with_the_first_frame(parser: str) -> None:
    """Each frame is a segment as it comes, and the head adds none.

    The end of the chunked body rides with the last frame on httptools; h11
    writes it apart (its own write in uvicorn's h11 cycle, not the head's).
    """
    async with gateway(http_parser=parser) as gw:
        host, port = address(gw)
        answer, segments = await _answer_segments(host, port, "text/event-stream")
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        frames = answer.count(b"\ndata: ")
        assert answer.count(b"event: done") == 1
        assert frames == 6  # 5 agent events and done
        assert segments == frames + (parser == "h11"), answer


@pytest.mark.parametrize("parser", ["httptools", "h11"])
async def test_a_head_only_answer_is_not_held_back(parser: str) -> None:
    """A HEAD answer (405 here: the routes are GET only) has no body on the
    wire to join: its head goes alone, and the connection serves the next request."""
    async with gateway(http_parser=parser) as gw:
        host, port = address(gw)
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(b"HEAD /healthz HTTP/1.1\r\nhost: gw\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 405 "), head
            writer.write(b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n")
            again = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert again.startswith(b"HTTP/1.1 200 "), again
        finally:
            writer.close()
