"""Reference agents as child processes on loopback addresses.

Used by the test suite, the benchmarks and the local stack. An agent is
started with ``--port 0`` unless a port is given, and its bound port is read
from its log ("serving on HOST:PORT"), so nothing races for free ports.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["AgentProcess", "start_agent"]

_SERVING = re.compile(r"serving on (\S+):(\d+)")


@dataclass
class AgentProcess:
    """One ``ecsgrpc agent`` child process; ``port`` is known once it serves."""

    host: str
    instance_id: str
    log_path: Path
    proc: subprocess.Popen[bytes]
    port: int = 0
    started_at: float = field(default_factory=time.monotonic)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

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
        """Kill at once (cleanup); use ``signal(SIGTERM)`` for a graceful stop."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_agent(
    host: str,
    log_dir: Path,
    *,
    instance_id: str | None = None,
    port: int = 0,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout: float = 15.0,
) -> AgentProcess:
    """Start an agent and wait (blocking, <= ``timeout``) until it listens.

    Raises RuntimeError with the agent's log when it does not start.
    """
    iid = instance_id or f"agent-{host}"
    log_path = log_dir / f"{iid}-{time.monotonic_ns()}.log"
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
