"""`ecsgrpc probe --tls ...` against real agent processes started with TLS flags/env."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.agents import AgentProcess
from tests.support.certs import CertAuthority, TlsFiles, make_tls_files

pytestmark = pytest.mark.timeout(60)


def _probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecsgrpc", "probe", *args],
        capture_output=True,
        text=True,
        timeout=20,
    )


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "pki", sans=["127.0.0.2", "127.0.0.3"])


def _tls_agent(
    agents: Callable[..., AgentProcess], host: str, f: TlsFiles, mtls: bool
) -> AgentProcess:
    args = ["--tls-cert", str(f.server_cert), "--tls-key", str(f.server_key)]
    if mtls:
        args += ["--tls-ca", str(f.ca)]
    return agents(host, args=tuple(args))


def test_probe_with_tls_flags_is_0(
    agents: Callable[..., AgentProcess], tls_files: TlsFiles
) -> None:
    agent = _tls_agent(agents, "127.0.0.2", tls_files, mtls=False)
    assert "(tls)" in agent.log_text()
    result = _probe(agent.address, "--tls", "--tls-ca-cert", str(tls_files.ca))
    assert result.returncode == 0, result.stderr
    assert "SERVING" in result.stdout


def test_probe_mtls_needs_the_client_certificate(
    agents: Callable[..., AgentProcess], tls_files: TlsFiles
) -> None:
    agent = _tls_agent(agents, "127.0.0.3", tls_files, mtls=True)
    assert "(mtls)" in agent.log_text()
    with_cert = _probe(
        agent.address,
        "--tls",
        "--tls-ca-cert",
        str(tls_files.ca),
        "--tls-client-cert",
        str(tls_files.client_cert),
        "--tls-client-key",
        str(tls_files.client_key),
    )
    assert with_cert.returncode == 0, with_cert.stderr
    without = _probe(agent.address, "--tls", "--tls-ca-cert", str(tls_files.ca), "--timeout", "3")
    assert without.returncode == 2
    assert "client certificate" in without.stderr


def test_plaintext_probe_against_tls_agent_is_2_and_says_tls(
    agents: Callable[..., AgentProcess], tls_files: TlsFiles
) -> None:
    agent = _tls_agent(agents, "127.0.0.2", tls_files, mtls=False)
    started = time.monotonic()
    result = _probe(agent.address, "--timeout", "5")
    assert result.returncode == 2
    assert "may require TLS" in result.stderr
    assert time.monotonic() - started < 4  # a TLS failure does not wait out the timeout
    assert "Traceback" not in result.stderr


def test_tls_probe_against_plaintext_agent_is_2_and_says_tls(
    agents: Callable[..., AgentProcess], tls_files: TlsFiles
) -> None:
    agent = agents("127.0.0.2")
    result = _probe(agent.address, "--tls", "--tls-ca-cert", str(tls_files.ca), "--timeout", "5")
    assert result.returncode == 2
    assert "TLS handshake failed" in result.stderr
    assert "does not speak TLS" in result.stderr


def test_probe_wrong_ca_and_server_name(
    agents: Callable[..., AgentProcess], tls_files: TlsFiles, tmp_path: Path
) -> None:
    agent = _tls_agent(agents, "127.0.0.2", tls_files, mtls=False)
    other = CertAuthority("other").write_to(tmp_path / "other")
    wrong_ca = _probe(agent.address, "--tls", "--tls-ca-cert", str(other))
    assert wrong_ca.returncode == 2
    assert "not signed by a trusted CA" in wrong_ca.stderr
    wrong_name = _probe(
        agent.address,
        "--tls",
        "--tls-ca-cert",
        str(tls_files.ca),
        "--tls-server-name",
        "nope.local",
    )
    assert wrong_name.returncode == 2
    assert "server name override" in wrong_name.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--tls-ca-cert", "ca.pem"), "--tls-ca-cert given without --tls"),
        (("--tls", "--tls-ca-cert", "/no/such/ca.pem"), "--tls-ca-cert='/no/such/ca.pem'"),
        (
            ("--tls", "--tls-client-cert", "c.pem"),
            "--tls-client-cert given without --tls-client-key",
        ),
        (("-tls", "-tls-client-key", "k.pem"), "-tls-client-key given without -tls-client-cert"),
        (("--tls", "--tls-server-name", "bad name"), "--tls-server-name='bad name'"),
    ],
)
def test_probe_bad_tls_arguments_are_1(args: tuple[str, ...], needle: str) -> None:
    result = _probe("127.0.0.1:1", *args)
    assert result.returncode == 1
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_agent_with_a_bad_tls_file_exits_2_naming_it(tmp_path: Path) -> None:
    garbage = tmp_path / "server.crt"
    garbage.write_text("not a certificate\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ecsgrpc",
            "agent",
            "--host",
            "127.0.0.2",
            "--port",
            "0",
            "--tls-cert",
            str(garbage),
            "--tls-key",
            str(garbage),
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "GRPC_TLS_CERT=" in result.stderr
    assert str(garbage) in result.stderr
    assert "Traceback" not in result.stderr
