"""`ecsgrpc probe` exit codes (grpc_health_probe's) and CLI error handling."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.support.agents import AgentProcess, wait_until

pytestmark = pytest.mark.timeout(60)


def _run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecsgrpc", *args], capture_output=True, text=True, timeout=timeout
    )


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def test_probe_serving_is_0(agents: Callable[..., AgentProcess]) -> None:
    agent = agents("127.0.0.2")
    result = _run("probe", agent.address)
    assert result.returncode == 0, result.stderr
    assert "SERVING" in result.stdout


def test_probe_absent_server_is_2() -> None:
    result = _run("probe", f"127.0.0.9:{_free_port('127.0.0.9')}", "--timeout", "0.5")
    assert result.returncode == 2
    assert "failed to connect" in result.stderr


async def test_probe_draining_server_is_4(agents: Callable[..., AgentProcess]) -> None:
    agent = agents("127.0.0.3", args=("--drain-seconds", "10", "--grace-seconds", "1"))
    agent.signal(signal.SIGTERM)
    assert await wait_until(lambda: "draining" in agent.log_text(), 5)
    result = _run("probe", agent.address)
    assert result.returncode == 4
    assert "NOT_SERVING" in result.stderr


def test_probe_unknown_service_is_rpc_failure_3(agents: Callable[..., AgentProcess]) -> None:
    agent = agents("127.0.0.4")
    result = _run("probe", agent.address, "--service", "no.such.Service")
    assert result.returncode == 3
    assert "NOT_FOUND" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("probe", "127.0.0.1"), "missing port"),
        (("probe", "127.0.0.1:99999"), "out of range"),
        (("probe", "127.0.0.1:1", "--timeout", "0"), "--timeout must be > 0"),
        (("probe", "127.0.0.1:1", "--bogus"), "No such option"),
        (("probe", "127.0.0.1:1", "--timeout", "soon"), "soon"),
    ],
)
def test_probe_invalid_arguments_are_1(args: tuple[str, ...], needle: str) -> None:
    result = _run(*args)
    assert result.returncode == 1
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("agent", "--bogus"), "No such option"),
        (("agent", "--port", "99999", "--host", "127.0.0.1"), "GRPC_PORT=99999"),
        (("agent", "--drain-seconds", "-1"), "GRPC_DRAIN_SECONDS=-1"),
        (("nosuchcommand",), "nosuchcommand"),
    ],
)
def test_other_commands_exit_2_with_one_line(args: tuple[str, ...], needle: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_agent_refuses_a_taken_port(agents: Callable[..., AgentProcess]) -> None:
    agent = agents("127.0.0.5")
    result = _run("agent", "--host", "127.0.0.5", "--port", str(agent.port))
    assert result.returncode == 2
    assert f"127.0.0.5:{agent.port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [(), ("agent",), ("probe",)])
def test_help_works_everywhere(command: tuple[str, ...]) -> None:
    result = _run(*command, "--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout
