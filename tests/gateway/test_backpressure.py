"""Real gateway and agent processes: backpressure end to end, and many open connections."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.agents import AgentProcess

pytestmark = pytest.mark.timeout(120)

GATEWAY_HOST = "127.0.0.45"
AGENT_HOST = "127.0.0.46"
_SERVING = re.compile(r"gateway serving on http://(\S+)")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@contextlib.contextmanager
def big_agent(megabytes: int) -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.gateway.big_agent", AGENT_HOST, str(megabytes)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("port "), line
        yield int(line.split()[1])
    finally:
        proc.kill()
        proc.wait(10)


@contextlib.contextmanager
def gateway_process(tmp_path: Path, target: str, **env: str) -> Iterator[tuple[str, int]]:
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ecsgrpc", "gateway", "--host", GATEWAY_HOST, "--port", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "WORKFLOW_SERVICE_TARGET": target,
                "GATEWAY_ACCESS_LOG": "false",
                **env,
            },
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            match = _SERVING.search(log_path.read_text(errors="replace"))
            if match:
                break
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.05)
        yield f"http://{match.group(1)}", proc.pid
    finally:
        proc.kill()
        proc.wait(10)


async def wait_ready(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(200):
            if (await http.get("/readyz")).status_code == 200:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("gateway not ready")


def request_bytes(host: str) -> bytes:
    body = json.dumps({"messages": [{"role": "user", "content": "big please"}]}).encode()
    return (
        b"POST /v1/conversations HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
        b"accept: text/event-stream\r\ncontent-length: %d\r\n\r\n" % (host.encode(), len(body))
    ) + body


async def slow_reader(host: str, port: int, seconds: float) -> int:
    """An SSE client that reads 4 KiB every 0.1 s for ``seconds``; bytes read."""
    reader, writer = await asyncio.open_connection(host, port)
    got = 0
    try:
        writer.write(request_bytes(host))
        await writer.drain()
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            chunk = await reader.read(4096)
            if not chunk:
                break
            got += len(chunk)
            await asyncio.sleep(0.1)
    finally:
        writer.close()
    return got


async def test_a_hundred_slow_sse_clients_of_5_mb_replies_grow_the_gateway_by_at_most_50_mb(
    tmp_path: Path,
) -> None:
    with (
        big_agent(5) as agent_port,
        gateway_process(tmp_path, f"{AGENT_HOST}:{agent_port}") as (
            url,
            pid,
        ),
    ):
        await wait_ready(url)
        # One fast client first: the whole reply arrives (and the gateway is warm).
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            response = await http.post(
                "/v1/conversations", json={"messages": [{"role": "user", "content": "big"}]}
            )
        assert response.status_code == 200
        assert len(response.json()["reply"]) == 5 * 1024 * 1024
        before = rss_mb(pid)
        host, port = url.removeprefix("http://").rsplit(":", 1)
        readers = [asyncio.create_task(slow_reader(host, int(port), 6.0)) for _ in range(100)]
        await asyncio.sleep(5.0)
        during = rss_mb(pid)
        got = await asyncio.gather(*readers)
    assert all(g > 0 for g in got), "every slow client got its stream going"
    assert max(got) < 5 * 1024 * 1024, "the slow clients were really slow"
    print(f"gateway RSS {before:.1f} MB before, {during:.1f} MB with 100 slow streams")
    assert during - before <= 50, (before, during)


@pytest.fixture
def open_files() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.asynccontextmanager
async def connections(
    host: str, port: int, count: int
) -> AsyncIterator[list[asyncio.StreamWriter]]:
    writers: list[asyncio.StreamWriter] = []
    try:
        for _ in range(count):
            _, writer = await asyncio.open_connection(host, port)
            writers.append(writer)
        yield writers
    finally:
        for writer in writers:
            writer.close()


async def test_two_thousand_open_connections_under_a_1024_open_files_soft_limit(
    tmp_path: Path, open_files: None
) -> None:
    # The gateway starts with the common soft limit of 1,024 and raises it itself.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4096:
        pytest.skip(f"the hard open-files limit is {hard}")
    with big_agent(1) as agent_port:
        prlimit = ["prlimit", f"--nofile=1024:{hard}", "--"]
        target = f"{AGENT_HOST}:{agent_port}"
        log_path = tmp_path / "gateway.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [
                    *prlimit,
                    sys.executable,
                    "-m",
                    "ecsgrpc",
                    "gateway",
                    "--host",
                    GATEWAY_HOST,
                    "--port",
                    "0",
                    "--target",
                    target,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    "GATEWAY_ACCESS_LOG": "false",
                    "GATEWAY_HEAD_TIMEOUT_SECONDS": "60",
                },
            )
        try:
            deadline = time.monotonic() + 60
            while not (match := _SERVING.search(log_path.read_text(errors="replace"))):
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                await asyncio.sleep(0.05)
            url = f"http://{match.group(1)}"
            host, port = match.group(1).rsplit(":", 1)
            await wait_ready(url)
            async with connections(host, int(port), 2000):
                await asyncio.sleep(0.5)
                async with httpx.AsyncClient(base_url=url, timeout=20) as http:
                    response = await http.post(
                        "/v1/conversations", json={"messages": [{"role": "user", "content": "hi"}]}
                    )
                    metrics = (await http.get("/metrics")).text
            assert response.status_code == 200
            gauge = re.search(r"^ecsgrpc_gateway_connections (\S+)", metrics, re.M)
            assert gauge and float(gauge.group(1)) >= 2000
            log_text = log_path.read_text()
            assert "out of system resource" not in log_text
            limit = re.search(r"open-files limit (\d+)", log_text)
            assert limit and int(limit.group(1)) == hard
        finally:
            proc.kill()
            proc.wait(10)


async def test_gateway_processes_share_one_port_with_reuse_port(
    tmp_path: Path, agents: Callable[..., AgentProcess]
) -> None:
    """docs/gateway.md's way to use every core: processes on one port, each serving."""
    import socket

    agent = agents(AGENT_HOST)

    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    probe.bind((GATEWAY_HOST, 0))
    port = probe.getsockname()[1]
    probe.close()
    env = {
        **os.environ,
        "GATEWAY_REUSE_PORT": "true",
        "WORKFLOW_SERVICE_TARGET": f"static:///{agent.address}",
    }
    procs, logs = [], []
    try:
        for index in range(2):
            log_path = tmp_path / f"gateway-{index}.log"
            logs.append(log_path)
            with log_path.open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "ecsgrpc",
                            "gateway",
                            "--host",
                            GATEWAY_HOST,
                            "--port",
                            str(port),
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                    )
                )
        deadline = time.monotonic() + 60
        while not all(_SERVING.search(p.read_text(errors="replace")) for p in logs):
            assert all(p.poll() is None for p in procs), [p.read_text() for p in logs]
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        body = {"messages": [{"role": "user", "content": "one two"}]}
        for _ in range(60):  # a new connection each: the kernel spreads them
            async with httpx.AsyncClient(
                base_url=f"http://{GATEWAY_HOST}:{port}", timeout=20
            ) as http:
                answer = await http.post("/v1/conversations", json=body)
                assert answer.status_code == 200, answer.text
                assert answer.json()["reply"] == "one two"
        served = [p.read_text().count("POST /v1/conversations") for p in logs]
        assert sum(served) == 60
        assert min(served) > 0, served
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)
