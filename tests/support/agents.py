"""Run reference agents as real processes on loopback addresses, for tests."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_SERVING = re.compile(r"serving on (\S+):(\d+)")


@dataclass
class AgentProcess:
    """One `ecsgrpc agent` child process; `port` is known once it serves."""

    host: str
    instance_id: str
    log_path: Path
    proc: subprocess.Popen[bytes]
    port: int = 0
    started_at: float = field(default_factory=time.monotonic)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_agent(
    host: str,
    tmp_path: Path,
    *,
    instance_id: str | None = None,
    port: int = 0,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout: float = 15.0,
) -> AgentProcess:
    """Start an agent and wait until it listens; raises with its log otherwise."""
    iid = instance_id or f"agent-{host}"
    log_path = tmp_path / f"{iid}-{time.monotonic_ns()}.log"
    cmd = [
        sys.executable,
        "-m",
        "ecsgrpc",
        "agent",
        "--host",
        host,
        "--port",
        str(port),
        "--instance-id",
        iid,
        *args,
    ]
    full_env = {**os.environ, **(env or {})}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    agent = AgentProcess(host=host, instance_id=iid, log_path=log_path, proc=proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _SERVING.search(agent.log_text())
        if match:
            agent.port = int(match.group(2))
            return agent
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    agent.stop()
    raise RuntimeError(f"agent {iid} did not start:\n{agent.log_text()}")


async def health_status(address: str, service: str = "", timeout: float = 2.0) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
        return int(reply.status)


async def wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    """Poll a sync or async predicate until true or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return True
        await asyncio.sleep(interval)
    return False
