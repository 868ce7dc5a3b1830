"""Hostile clients on raw sockets, with normal traffic alongside that must not notice.

Each test runs the gateway over a real agent, first measures normal traffic
alone, then again while the hostile clients work: the normal traffic's error
rate stays 0 and its p99 within 2x (with a 50 ms floor, since this machine is
shared). Most tests run the gateway in this process (uvicorn); the two with
normal traffic alongside run the gateway and its agent as their own
processes, as a user runs them: in this process the attackers' cost on the
gateway (about 0.4 ms of CPU per slowloris 408 cycle, 200 of them a second)
would land on the normal clients' own event loop too.

Those two were marked xfail while runs failed on this shared 2-core machine
(single stalls of 100-300 ms at load 2.9-5.6, with other work on the machine).
On 2026-11-30, under the measurement lock at load 1.3-2.4, 16 of 16 runs of
both passed with the gateway's default CPU policy (batch) and 3 of 3 with
``GATEWAY_CPU_POLICY=normal``: header abuse at 0.66-0.99 of its 100 ms limit
(its attacked p99, 33-50 ms against 13-25 ms alone, is held by the floor, not
by the 2x), slowloris at 0.52-0.69. They are plain tests again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from ecsgrpc.endpoints import Endpoint
from ecsgrpc_apps.bench.gateway_overload import GatewayProcess, pin
from ecsgrpc_apps.workflow.agent import WorkflowAgentServicer
from ecsgrpc_apps.workflow.settings import AgentSettings
from tests.gateway.support import RunningGateway, conversation, running_gateway
from tests.support.agents import start_agent, wait_until
from tests.support.servers import running_server

pytestmark = pytest.mark.timeout(90)

HOST = "127.0.0.41"
PROCESS_HOST = "127.0.0.47"
PROCESS_AGENT_HOST = "127.0.0.48"


@pytest.fixture(params=["httptools", "h11"])
def parser(request: pytest.FixtureRequest) -> str:
    """The gateway's HTTP parser (GATEWAY_HTTP_PARSER): each limit holds on both."""
    return str(request.param)


@dataclass
class Traffic:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    def p99(self) -> float:
        return self.quantile(0.99)

    def summary(self) -> str:
        return (
            f"{len(self.latencies)} calls, p50 {self.quantile(0.5) * 1000:.1f} ms, "
            f"p99 {self.p99() * 1000:.1f} ms, max {max(self.latencies) * 1000:.1f} ms"
        )


async def normal_traffic(clients: list[httpx.AsyncClient], seconds: float) -> Traffic:
    """Closed-loop JSON conversations, one at a time per keep-alive client, for ``seconds``."""
    traffic = Traffic()
    stop = time.monotonic() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                response = await http.post("/v1/conversations", json=conversation("a b c"))
                if response.status_code != 200:
                    traffic.errors.append(f"{response.status_code} {response.text[:100]}")
            except httpx.HTTPError as exc:
                traffic.errors.append(repr(exc))
            traffic.latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client(http) for http in clients))
    return traffic


@contextlib.asynccontextmanager
async def gateway(**settings: object) -> AsyncIterator[RunningGateway]:
    agent = WorkflowAgentServicer(AgentSettings(instance_id="agent-a"))
    async with running_server("127.0.0.42", agent) as server:
        ep = Endpoint("127.0.0.42", server.port, {"instance_id": "agent-a"})
        async with running_gateway([ep], host=HOST, **settings) as gw:
            await gw.channel.channel_ready(timeout=10)
            yield gw


async def alongside(
    url: str,
    mode: str,
    connections: int,
    rounds: int = 3,
    *,
    settle: float = 0.0,
    cpu: Callable[[], float] | None = None,
    gateway_pid: int | None = None,
) -> None:
    """Normal traffic alone and with hostile clients (``tests.gateway.hostile``, a
    separate process) at work: no error, p99 within 2x.

    The rounds alternate (the attacker is SIGSTOPped for the rounds alone), so
    the shared machine's load weighs on both alike. ``settle``: seconds to wait
    after the SIGSTOP, for the gateway to be done with the stopped attacker's
    connections (its head timeout), so the rounds alone are free of it.
    ``cpu``: the gateway process's CPU seconds, printed per kind of round.
    ``gateway_pid``: the gateway's process, given a core of its own while the
    attackers, the agent and this process share the other (on a machine with
    two cores or more): in production the attackers run on other machines, so
    their own CPU must not be counted as the gateway's weakness.
    """
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port
    assert host and port
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
    mine = os.sched_getaffinity(0)
    isolate = gateway_pid is not None and len(mine) >= 2
    if isolate:
        assert gateway_pid is not None
        gateway_core, others = min(mine), mine - {min(mine)}
        pin(gateway_pid, {gateway_core})
        pin(proc.pid, others)
        pin(os.getpid(), others)
    baseline, during = Traffic(), Traffic()
    spent = {"alone": 0.0, "attacked": 0.0, "attacker": 0.0}
    measure = cpu or (lambda: 0.0)
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"started\n"
        async with contextlib.AsyncExitStack() as stack:
            # The same four keep-alive clients in every round, made and connected
            # before any round is timed: making an httpx client takes tens of ms of
            # this process's loop, which the first calls of a round would count.
            clients = [
                await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=10))
                for _ in range(4)
            ]
            await normal_traffic(clients, 0.5)
            for _ in range(rounds):
                proc.send_signal(signal.SIGSTOP)
                await asyncio.sleep(settle)
                cpu0 = measure()
                alone = await normal_traffic(clients, 1.0)
                spent["alone"] += measure() - cpu0
                proc.send_signal(signal.SIGCONT)
                await asyncio.sleep(0.3)
                cpu0, hostile0 = measure(), cpu_seconds(proc.pid)
                attacked = await normal_traffic(clients, 1.0)
                spent["attacked"] += measure() - cpu0
                spent["attacker"] += cpu_seconds(proc.pid) - hostile0
                for total, part in ((baseline, alone), (during, attacked)):
                    total.latencies += part.latencies
                    total.errors += part.errors
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        await proc.wait()
        if isolate:
            pin(os.getpid(), mine)
    print(
        f"{mode}: normal traffic alone {baseline.summary()}, gateway CPU {spent['alone']:.2f} s; "
        f"attacked {during.summary()}, gateway CPU {spent['attacked']:.2f} s, "
        f"the attackers' own {spent['attacker']:.2f} s; "
        f"p99 ratio {during.p99() / max(baseline.p99(), 0.05):.2f}"
    )
    assert not baseline.errors, baseline.errors[:3]
    assert not during.errors, during.errors[:3]
    assert len(during.latencies) >= 12, "too few requests to judge"
    assert during.p99() <= 2 * max(baseline.p99(), 0.05), (during.p99(), baseline.p99())


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


async def test_header_abuse_leaves_normal_traffic_alone(tmp_path: Path) -> None:
    # As processes (see test_slowloris_...): in this process the 8 attackers' 100 kB
    # heads cost the normal clients' own loop too (in-process, interleaved under the
    # measurement lock: 3.6-4.1x in 3 runs, against 0.86-0.97x as processes).
    async with gateway_process(tmp_path) as gw:
        url = f"http://{gw.host}:{gw.port}"
        await alongside(url, "headers", 8, cpu=gw.cpu_seconds, gateway_pid=gw.proc and gw.proc.pid)
        assert await scraped(url, "ecsgrpc_gateway_refusals_total", reason="head_too_large") > 0


@contextlib.asynccontextmanager
async def gateway_process(tmp_path: Path, **env: str) -> AsyncIterator[GatewayProcess]:
    """An ``ecsgrpc agent`` and an ``ecsgrpc gateway`` over it, each its own process."""
    agent = await asyncio.to_thread(start_agent, PROCESS_AGENT_HOST, tmp_path)
    gateway = GatewayProcess(
        agent.address, env={k.upper(): v for k, v in env.items()}, host=PROCESS_HOST
    )
    try:
        await asyncio.to_thread(gateway.start)
        cores = os.sched_getaffinity(0)
        if len(cores) >= 2:  # the agent off the core alongside() gives the gateway
            pin(agent.proc.pid, cores - {min(cores)})
        url = f"http://{gateway.host}:{gateway.port}"
        async with httpx.AsyncClient(base_url=url) as http:
            assert await wait_until(lambda: _ready(http), 10), (
                f"gateway not ready: {gateway.log.read_text()[-500:]}"
            )
        yield gateway
    finally:
        await asyncio.to_thread(gateway.stop)
        await asyncio.to_thread(agent.stop)


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def scraped(url: str, name: str, **labels: str) -> float:
    """One sample of the gateway's ``/metrics`` (0 when absent)."""
    async with httpx.AsyncClient(base_url=url) as http:
        text = (await http.get("/metrics")).text
    wanted = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_slowloris_leaves_normal_traffic_alone(tmp_path: Path) -> None:
    # The gateway and its agent run as a user runs them, each its own process, so
    # the attackers' cost lands where it would in production: on the gateway.
    async with gateway_process(tmp_path, gateway_head_timeout_seconds="1") as gw:
        url = f"http://{gw.host}:{gw.port}"
        await alongside(
            url,
            "slowloris",
            200,
            settle=1.5,
            cpu=gw.cpu_seconds,
            gateway_pid=gw.proc and gw.proc.pid,
        )
        assert await scraped(url, "ecsgrpc_gateway_refusals_total", reason="head_timeout") > 0


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


async def test_connections_opened_together_time_out_spread_over_a_quarter_of_the_timeout(
    parser: str,
) -> None:
    # Each connection's head timeout is drawn in [1, 1.25] x the setting, so an
    # attacker's connections opened together do not all get their 408 in one batch.
    async with gateway(http_parser=parser, head_timeout_seconds=1.0) as gw:
        conns: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []
        for _ in range(50):
            opened = time.monotonic()
            conns.append((opened, *await asyncio.open_connection(*address(gw))))

        async def closed_after(opened: float, reader: asyncio.StreamReader) -> float:
            answer = await reader.read()
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:40]
            return time.monotonic() - opened

        try:
            after = await asyncio.wait_for(
                asyncio.gather(*(closed_after(opened, r) for opened, r, _ in conns)), 10
            )
        finally:
            for _, _, writer in conns:
                writer.close()
        assert min(after) >= 0.99, sorted(after)
        assert max(after) - min(after) >= 0.1, sorted(after)


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
