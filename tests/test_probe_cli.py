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
    assert "does not know the service 'no.such.Service'" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("probe", "127.0.0.1"), "missing port"),
        (("probe", "127.0.0.1:99999"), "out of range"),
        (("probe", "127.0.0.1:1", "--timeout", "0"), "--timeout must be > 0"),
        (("probe", "127.0.0.1:1", "--bogus"), "unrecognized arguments: --bogus"),
        (("probe", "127.0.0.1:1", "--timeout", "soon"), "'soon'"),
        (("probe",), "-addr not specified"),
        (("probe", "-addr=127.0.0.1:1", "-connect-timeout", "0s"), "-connect-timeout must be > 0"),
        (("probe", "-addr=127.0.0.1:1", "-rpc-timeout", "fast"), "'fast' is not a duration"),
        (
            ("probe", "-addr=127.0.0.1:1", "-tls-ca-cert", "ca.pem"),
            "-tls-ca-cert given without -tls",
        ),
        (("probe", "-addr=127.0.0.1:1", "-tls-no-verify"), "-tls-no-verify given without -tls"),
        (
            ("probe", "-addr=127.0.0.1:1", "-tls", "-tls-client-cert", "c.pem"),
            "-tls-client-cert given without -tls-client-key",
        ),
        (
            ("probe", "-addr=127.0.0.1:1", "-tls", "-tls-no-verify", "-tls-ca-cert", "ca.pem"),
            "cannot give -tls-ca-cert with -tls-no-verify",
        ),
        (("probe", "-addr=127.0.0.1:1", "-rpc-header", "novalue"), "is not 'name: value'"),
        (("probe", "-addr=127.0.0.1:1", "-tls=maybe"), "not a boolean"),
    ],
)
def test_probe_invalid_arguments_are_1(args: tuple[str, ...], needle: str) -> None:
    result = _run(*args)
    assert result.returncode == 1, result.stderr
    assert needle in result.stderr
    assert result.stderr.startswith("ecsgrpc probe: error: ")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("agent", "--bogus"), "unrecognized arguments: --bogus"),
        (("agent", "--port", "99999", "--host", "127.0.0.1"), "--port='99999': must be <= 65535"),
        (("agent", "--drain-seconds", "-1"), "--drain-seconds='-1': must be >= 0"),
        (("agent", "--event-delay", "soon"), "--event-delay='soon': not a number"),
        (("gateway", "--port", "http"), "--port='http'"),
        (("gateway", "--request-timeout", "0"), "--request-timeout='0': must be > 0"),
        (("discover", "dns:///a..b:1"), "not a valid DNS name"),
        (("nosuchcommand",), "nosuchcommand"),
    ],
)
def test_other_commands_exit_2_with_one_line(args: tuple[str, ...], needle: str) -> None:
    result = _run(*args)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert result.stderr.startswith("ecsgrpc")
    assert ": error: " in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_error_names_the_variable_when_the_environment_is_bad() -> None:
    import os

    env = {**os.environ, "GRPC_PORT": "99999"}
    result = subprocess.run(
        [sys.executable, "-m", "ecsgrpc", "agent", "--host", "127.0.13.9"],
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
    )
    assert result.returncode == 2
    assert "GRPC_PORT='99999'" in result.stderr
    assert "--port" not in result.stderr


@pytest.mark.parametrize("command", ["agent", "gateway"])
def test_a_taken_port_is_one_line_and_exit_1(command: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.13.5", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(command, "--host", "127.0.13.5", "--port", str(port))
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on 127.0.13.5:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


COMMANDS = [(), ("probe",), ("discover",), ("agent",), ("gateway",), ("demo",), ("bench",)]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_works_everywhere(command: tuple[str, ...], flag: str) -> None:
    result = _run(*command, flag)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ecsgrpc")


@pytest.mark.parametrize("command", COMMANDS)
def test_version_works_everywhere(command: tuple[str, ...]) -> None:
    from importlib.metadata import version

    result = _run(*command, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ecsgrpc {version('ecsgrpc')} (grpcio ")


@pytest.mark.parametrize("command", COMMANDS)
def test_boolean_flags_take_no_value_and_help_speaks_of_this_project(
    command: tuple[str, ...],
) -> None:
    text = _run(*command, "--help").stdout
    for word in ("typer", "click", "seed", "rich"):
        assert word not in text.lower(), word
    for flag in ("--json", "--watch", "--tls", "--quick", "--keep-running", "-gzip"):
        assert f"{flag} {flag.lstrip('-').upper()}" not in text


def test_agent_help_shows_defaults_and_variables_like_the_gateway() -> None:
    for command, env in (("agent", "GRPC_PORT"), ("gateway", "GATEWAY_PORT")):
        text = " ".join(_run(command, "--help").stdout.split())
        assert f"[env {env}, default" in text, text
        assert "[env GRPC_DRAIN_SECONDS, default 5.0]" in text or command == "gateway"
