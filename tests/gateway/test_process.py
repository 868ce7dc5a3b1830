"""A real ``ecsgrpc gateway`` process: start, serve, and drain on SIGTERM."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ecsgrpc_apps.scheduling import thread_policies
from tests.gateway.support import SSE, conversation, read_frames
from tests.support.agents import AgentProcess, wait_until

pytestmark = pytest.mark.timeout(60)

needs_string_targets = pytest.mark.skipif(
    importlib.util.find_spec("ecsgrpc.resolvers.registry") is None,
    reason="string targets (static:///...) arrive with the discovery branch",
)

_SERVING = re.compile(r"gateway serving on http://(\S+)")


@dataclass
class GatewayProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    started: list[GatewayProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> GatewayProcess:
        log_path = tmp_path / f"gateway-{len(started)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ecsgrpc", "gateway", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        gw = GatewayProcess(proc, log_path)
        started.append(gw)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            match = _SERVING.search(gw.log_text())
            if match:
                gw.url = f"http://{match.group(1)}"
                return gw
            time.sleep(0.05)
        return gw  # not serving: the test looks at the exit code and the log

    yield start
    for gw in started:
        if gw.proc.poll() is None:
            gw.proc.kill()
            gw.proc.wait(10)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEWAY_MAX_MESSAGES", "0"),
        ("GATEWAY_CPU_POLICY", "fifo"),  # an unknown CPU policy
        ("GATEWAY_LATENCY_TOLERANCE", "0.5"),  # below 1
        ("GATEWAY_EVENT_LOOP", "tokio"),  # an unknown event loop
        ("GATEWAY_HTTP_PARSER", "picohttp"),  # an unknown HTTP parser
    ],
)
def test_bad_settings_fail_at_start_naming_the_value(
    variable: str, value: str, gateway_process: Callable[..., GatewayProcess]
) -> None:
    gw = gateway_process("--host", "127.0.0.13", "--port", "0", env={variable: value})
    assert gw.proc.wait(15) == 2
    log = gw.log_text()
    assert f"{variable}={value!r}" in log
    assert "Traceback" not in log


@needs_string_targets
def test_a_bad_target_fails_at_start_naming_it(
    gateway_process: Callable[..., GatewayProcess],
) -> None:
    gw = gateway_process("--host", "127.0.0.13", "--port", "0", "--target", "nope://x")
    assert gw.proc.wait(15) == 2
    log = gw.log_text()
    assert "nope://x" in log
    assert "Traceback" not in log


@needs_string_targets
async def test_sigterm_drains_finishes_streams_and_exits_0(
    agents: Callable[..., AgentProcess], gateway_process: Callable[..., GatewayProcess]
) -> None:
    agent = agents("127.0.0.2", args=("--event-delay", "0.2"))
    gw = gateway_process(
        "--host",
        "127.0.0.13",
        "--port",
        "0",
        "--target",
        f"static:///{agent.address}",
        "--drain-seconds",
        "1.5",
        "--grace-seconds",
        "10",
    )
    assert gw.url, gw.log_text()
    words = " ".join(f"w{i}" for i in range(15))  # ~3 s of stream
    async with httpx.AsyncClient(base_url=gw.url, timeout=20) as http:
        assert await wait_until(lambda: _ready(http), 10), gw.log_text()
        async with http.stream(
            "POST", "/v1/conversations", json=conversation(words, "in-flight"), headers=SSE
        ) as stream:
            assert stream.status_code == 200
            gw.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            # Readiness goes off at once...
            assert await wait_until(lambda: _not_ready(http), 1.0), gw.log_text()
            # ...while the gateway still serves new requests during the drain.
            during = await http.post("/v1/conversations", json=conversation("during drain"))
            assert during.json()["reply"] == "during drain"
            frames = await read_frames(stream)
        # The in-flight stream finished completely, after the drain had started.
        assert frames[-1].event == "done", frames[-1]
        assert frames[-1].data["reply"] == words
        assert time.monotonic() - signalled > 1.5
        code = await asyncio.to_thread(gw.proc.wait, 20)
    assert code == 0, gw.log_text()
    log = gw.log_text()
    assert "received SIGTERM" in log
    assert "gateway serving -> draining" in log
    assert "Traceback" not in log
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=gw.url, timeout=2) as http:
            await http.get("/healthz")


@needs_string_targets
@pytest.mark.parametrize(("loop", "parser"), [("uvloop", "httptools"), ("asyncio", "h11")])
async def test_the_gateway_serves_and_drains_on_the_event_loop_and_parser_asked_for(
    loop: str,
    parser: str,
    agents: Callable[..., AgentProcess],
    gateway_process: Callable[..., GatewayProcess],
) -> None:
    agent = agents("127.0.0.2")
    gw = gateway_process(
        "--host",
        "127.0.0.13",
        "--port",
        "0",
        "--target",
        f"static:///{agent.address}",
        "--drain-seconds",
        "0",
        env={"GATEWAY_EVENT_LOOP": loop, "GATEWAY_HTTP_PARSER": parser},
    )
    assert gw.url, gw.log_text()
    async with httpx.AsyncClient(base_url=gw.url, timeout=20) as http:
        assert await wait_until(lambda: _ready(http), 10), gw.log_text()
        answer = await http.post("/v1/conversations", json=conversation("one two"))
        assert answer.json()["reply"] == "one two"
        async with http.stream(
            "POST", "/v1/conversations", json=conversation("three four"), headers=SSE
        ) as stream:
            frames = await read_frames(stream)
        assert frames[-1].event == "done"
        assert frames[-1].data["reply"] == "three four"
    gw.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(gw.proc.wait, 20) == 0, gw.log_text()
    log = gw.log_text()
    assert f"event loop: {loop}" in log
    assert f"http parser: {parser}" in log
    assert "Traceback" not in log


@needs_string_targets
@pytest.mark.parametrize(("policy", "expected"), [(None, "SCHED_BATCH"), ("normal", "SCHED_OTHER")])
async def test_every_gateway_thread_runs_under_the_cpu_policy_asked_for(
    policy: str | None,
    expected: str,
    agents: Callable[..., AgentProcess],
    gateway_process: Callable[..., GatewayProcess],
) -> None:
    # Batch by default (docs/gateway.md, "CPU scheduling"): gRPC's threads, started
    # after the policy was set, inherit it; so does every thread the gateway has.
    agent = agents("127.0.0.2")
    gw = gateway_process(
        "--host",
        "127.0.0.13",
        "--port",
        "0",
        "--target",
        f"static:///{agent.address}",
        env={"GATEWAY_CPU_POLICY": policy} if policy else {},
    )
    assert gw.url, gw.log_text()
    async with httpx.AsyncClient(base_url=gw.url, timeout=20) as http:
        assert await wait_until(lambda: _ready(http), 10), gw.log_text()
        answer = await http.post("/v1/conversations", json=conversation("one two"))
        assert answer.json()["reply"] == "one two"
    policies = thread_policies(gw.proc.pid)
    assert len(policies) >= 3, policies  # the loop's thread and gRPC's own, at least
    assert set(policies.values()) == {getattr(os, expected)}, policies
    assert f"cpu policy: {policy or 'batch'}" in gw.log_text()


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def _not_ready(http: httpx.AsyncClient) -> bool:
    response = await http.get("/readyz")
    return response.status_code == 503 and response.json()["status"] == "draining"


@needs_string_targets
async def test_sse_through_a_gateway_process_to_agents_found_in_cloud_map(
    agents: Callable[..., AgentProcess],
    gateway_process: Callable[..., GatewayProcess],
) -> None:
    from ecsgrpc_apps.local.emulator import AwsEmulator

    procs = [agents(f"127.0.0.{i}") for i in (2, 3)]
    with AwsEmulator(host="127.0.0.1") as aws:
        svc = await asyncio.to_thread(aws.provision_cloudmap)
        for proc, zone in zip(procs, ("us-east-1a", "us-east-1b"), strict=True):
            attributes = {
                "AWS_INSTANCE_IPV4": proc.host,
                "AWS_INSTANCE_PORT": str(proc.port),
                "AVAILABILITY_ZONE": zone,
            }
            await asyncio.to_thread(aws.register_instance, svc, proc.instance_id, attributes)
        gw = gateway_process(
            "--host",
            "127.0.0.13",
            "--port",
            "0",
            "--target",
            "cloudmap://workflow.local/workflow-agent?poll=1s",
            env=aws.env(),
        )
        assert gw.url, gw.log_text()
        served = set()
        async with httpx.AsyncClient(base_url=gw.url, timeout=20) as http:
            assert await wait_until(lambda: _ready(http), 15), gw.log_text()
            endpoints = (await http.get("/debug/endpoints")).json()
            for n in range(16):  # least_request ties break at random: both agents serve
                text = f"found in cloud map {n}"
                async with http.stream(
                    "POST", "/v1/conversations", json=conversation(text), headers=SSE
                ) as stream:
                    frames = await read_frames(stream)
                assert frames[-1].event == "done"
                assert frames[-1].data["reply"] == text
                served.add(frames[-1].data["served_by"])
    assert {(e["address"], e["zone"]) for e in endpoints} == {
        (procs[0].address, "us-east-1a"),
        (procs[1].address, "us-east-1b"),
    }
    assert served == {p.instance_id for p in procs}
