"""grpc_health_probe compatibility: its flags, as its users type them, against real agents.

The table below is the published flag list of grpc_health_probe (its README and
``main.go``): each row runs ``ecsgrpc probe`` with the flag spelled the Go way
(one dash, ``-flag=value`` or ``-flag value``, Go durations) against a real
agent process, and checks grpc_health_probe's exit code. docs/security.md
shows the same table.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ecsgrpc_apps.workflow import SERVICE_NAME
from tests.support.agents import AgentProcess
from tests.support.certs import TlsFiles, make_tls_files

pytestmark = pytest.mark.timeout(120)

PLAIN_HOST = "127.0.13.2"
TLS_HOST = "127.0.13.3"
MTLS_HOST = "127.0.13.4"


def _probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecsgrpc", "probe", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(
        tmp_path_factory.mktemp("pki"), sans=[PLAIN_HOST, TLS_HOST, MTLS_HOST, "agent.test"]
    )


@pytest.fixture
def fleet(agents: Callable[..., AgentProcess], pki: TlsFiles, tmp_path: Path) -> dict[str, str]:
    """A plaintext agent, a TLS agent (sending its whole chain) and an mTLS agent."""
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.server_cert.read_bytes() + pki.ca.read_bytes())
    tls = ("--tls-cert", str(chain), "--tls-key", str(pki.server_key))
    return {
        "plain": agents(PLAIN_HOST).address,
        "tls": agents(TLS_HOST, args=tls).address,
        "mtls": agents(MTLS_HOST, args=(*tls, "--tls-ca", str(pki.ca))).address,
    }


# (flags, agent, exit code); "{ca}", "{cert}", "{key}" are the test PKI's files.
TABLE: list[tuple[tuple[str, ...], str, int]] = [
    (("-addr={plain}",), "plain", 0),
    (("-addr", "{plain}"), "plain", 0),
    (("--addr={plain}",), "plain", 0),
    (("-addr={plain}", f"-service={SERVICE_NAME}"), "plain", 0),
    (("-addr={plain}", "-service", "no.such.Service"), "plain", 3),
    (("-addr={plain}", "-connect-timeout", "250ms", "-rpc-timeout", "1.5s"), "plain", 0),
    (("-addr={plain}", "-connect-timeout=1m", "-rpc-timeout=1m"), "plain", 0),
    (("-addr={plain}", "-rpc-header", "x-probe: 1", "-rpc-header=x-other:2"), "plain", 0),
    (("-addr={plain}", "-user-agent", "kube-probe/1.30"), "plain", 0),
    (("-addr={plain}", "-gzip"), "plain", 0),
    (("-addr={plain}", "-gzip=true", "-tls=false"), "plain", 0),
    (("-addr={plain}", "-v"), "plain", 0),
    (("-addr={plain}", "-tls", "-connect-timeout", "500ms"), "plain", 2),
    (("-addr={tls}", "-tls", "-tls-ca-cert={ca}"), "tls", 0),
    (("-addr={tls}", "-tls", "-tls-ca-cert", "{ca}", "-tls-server-name", "agent.test"), "tls", 0),
    (("-addr={tls}", "-tls", "-connect-timeout", "2s"), "tls", 2),  # untrusted: system roots
    (("-addr={tls}", "-tls", "-tls-no-verify"), "tls", 0),
    (
        (
            "-addr={mtls}",
            "-tls",
            "-tls-ca-cert={ca}",
            "-tls-client-cert={cert}",
            "-tls-client-key={key}",
        ),
        "mtls",
        0,
    ),
    (("-addr={plain}", "-spiffe"), "plain", 20),
    (("-addr={plain}", "-tls", "-spiffe"), "plain", 1),
    (("-addr={plain}", "-tls-server-name", "x"), "plain", 1),
    (("-connect-timeout", "1s"), "plain", 1),
]


@pytest.mark.parametrize(("flags", "agent", "code"), TABLE, ids=[" ".join(r[0]) for r in TABLE])
def test_grpc_health_probe_flags(
    fleet: dict[str, str], pki: TlsFiles, flags: tuple[str, ...], agent: str, code: int
) -> None:
    files = {"ca": pki.ca, "cert": pki.client_cert, "key": pki.client_key}
    args = [f.format(**fleet, **files) for f in flags]
    result = _probe(*args)
    assert result.returncode == code, (args, result.stdout, result.stderr)
    if code == 0:
        assert result.stdout == "status: SERVING\n"
    else:
        # One line of ours: grpc core's own log lines never reach the output.
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith("ecsgrpc probe: error: ")


def test_verbose_reports_the_steps_and_nothing_from_grpc_core(fleet: dict[str, str]) -> None:
    result = _probe(f"-addr={fleet['plain']}", "-v")
    assert result.returncode == 0
    lines = result.stderr.splitlines()
    assert lines[0].startswith("establishing connection to ")
    assert any(line.startswith("time elapsed: connect=") for line in lines)
    import re

    core_log = re.compile(r"^[EWID]\d{4} \d\d:\d\d:\d\d")  # grpc core's glog format
    assert not any(core_log.match(line) for line in lines), lines
    assert "absl" not in result.stderr


@pytest.fixture
def http1_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(
        ("127.0.13.6", 0), http.server.SimpleHTTPRequestHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_non_grpc_port_says_so_at_once(http1_port: int) -> None:
    result = _probe(f"-addr=127.0.13.6:{http1_port}", "-connect-timeout", "5s")
    assert result.returncode == 2
    assert "not a gRPC server (got HTTP/1.x)" in result.stderr
    assert "timeout" not in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_port_that_is_not_grpc_does_not_wait_out_the_timeout(http1_port: int) -> None:
    import time

    started = time.monotonic()
    _probe(f"127.0.13.6:{http1_port}", "--timeout", "20")
    assert time.monotonic() - started < 15
