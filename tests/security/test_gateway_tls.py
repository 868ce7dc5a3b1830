"""The gateway's channel to the agents over mTLS with a bearer token, from the environment.

Both run as real processes: the agent with GRPC_TLS_* and GRPC_AUTH_TOKEN, the
gateway with WORKFLOW_SERVICE_TLS_* and WORKFLOW_SERVICE_AUTH_TOKEN.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.agents import AgentProcess
from tests.support.certs import TlsFiles, make_tls_files

pytestmark = pytest.mark.timeout(90)
TOKEN = "gateway-test-token-0123456789abcdef"


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def _gateway(tmp_path: Path, env: dict[str, str]) -> Iterator[str]:
    host, port = "127.0.0.12", _free_port("127.0.0.12")
    log_path = tmp_path / f"gateway-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ecsgrpc", "gateway", "--host", host, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        assert TOKEN not in log_path.read_text(), "the token leaked into the gateway's log"


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path, sans=["127.0.0.2"])


@pytest.fixture
def agent(agents: Callable[..., AgentProcess], tls: TlsFiles) -> AgentProcess:
    return agents(
        "127.0.0.2",
        env={
            "GRPC_TLS_CERT": str(tls.server_cert),
            "GRPC_TLS_KEY": str(tls.server_key),
            "GRPC_TLS_CA": str(tls.ca),
            "GRPC_AUTH_TOKEN": TOKEN,
        },
    )


def _client_env(agent: AgentProcess, tls: TlsFiles, **extra: str) -> dict[str, str]:
    return {
        "WORKFLOW_SERVICE_TARGET": f"static:///{agent.address}",
        "WORKFLOW_SERVICE_TLS_CA": str(tls.ca),
        "WORKFLOW_SERVICE_TLS_CERT": str(tls.client_cert),
        "WORKFLOW_SERVICE_TLS_KEY": str(tls.client_key),
        "WORKFLOW_SERVICE_AUTH_TOKEN": TOKEN,
        **extra,
    }


def _wait_ready(url: str, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    status = 0
    while time.monotonic() < deadline:
        status = httpx.get(f"{url}/readyz", timeout=2).status_code
        if status == 200:
            return status
        time.sleep(0.1)
    return status


def test_gateway_talks_mtls_with_a_token_to_the_agent(
    agent: AgentProcess, tls: TlsFiles, tmp_path: Path
) -> None:
    with _gateway(tmp_path, _client_env(agent, tls)) as url:
        assert _wait_ready(url) == 200
        body = {"messages": [{"role": "user", "content": "over mutual tls"}]}
        response = httpx.post(f"{url}/v1/conversations", json=body, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["reply"] == "over mutual tls"
    assert response.json()["served_by"] == agent.instance_id


def test_gateway_without_a_client_certificate_is_not_ready_and_says_why(
    agent: AgentProcess, tls: TlsFiles, tmp_path: Path
) -> None:
    env = _client_env(agent, tls)
    del env["WORKFLOW_SERVICE_TLS_CERT"], env["WORKFLOW_SERVICE_TLS_KEY"]
    with _gateway(tmp_path, env) as url:
        assert _wait_ready(url, timeout=3) == 503
        response = httpx.post(
            f"{url}/v1/conversations",
            json={"messages": [{"role": "user", "content": "hi"}]},
            timeout=15,
        )
        endpoints = httpx.get(f"{url}/debug/endpoints", timeout=5).json()
    assert response.status_code == 503
    assert "Traceback" not in response.text
    assert endpoints[0]["pickable"] is False


def test_gateway_with_a_wrong_token_gets_a_clear_401_free_error(
    agent: AgentProcess, tls: TlsFiles, tmp_path: Path
) -> None:
    env = _client_env(agent, tls, WORKFLOW_SERVICE_AUTH_TOKEN="not-the-token-at-all")
    with _gateway(tmp_path, env) as url:
        assert _wait_ready(url) == 200  # health is open; calls are not
        response = httpx.post(
            f"{url}/v1/conversations",
            json={"messages": [{"role": "user", "content": "hi"}]},
            timeout=10,
        )
    # The agent says UNAUTHENTICATED: the gateway's own credentials are wrong,
    # which is the gateway's fault, not the HTTP client's: 502.
    assert response.status_code == 502, response.text
    assert "UNAUTHENTICATED" in response.text or "unauthenticated" in response.text
