"""schemathesis against the gateway's OpenAPI: every response documented, no 5xx.

The gateway and an agent run as real processes; schemathesis' CLI generates
the requests (schema-valid and invalid ones) and checks every answer.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.agents import AgentProcess

pytestmark = pytest.mark.timeout(240)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gateway_url(agents: Callable[..., AgentProcess], tmp_path: Path) -> Iterator[str]:
    agent = agents("127.0.0.2")
    host, port = "127.0.0.11", _free_port("127.0.0.11")
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ecsgrpc",
            "gateway",
            "--host",
            host,
            "--port",
            str(port),
            "--target",
            f"static:///{agent.address}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError((tmp_path / "gateway.log").read_text())
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_schemathesis_finds_no_server_error_and_no_undocumented_response(
    gateway_url: str,
) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is not installed (pip install -e '.[test]')"
    result = subprocess.run(
        [
            st,
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{gateway_url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "150",
            "--seed",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=200,
    )
    output = result.stdout + result.stderr
    readable = re.sub(r"(\\u[0-9a-f]{4}|.)\1{40,}", r"\1<...repeated...>", output)
    assert result.returncode == 0, readable[-6000:]
    cases = re.search(r"(\d+) generated", output)
    assert cases is not None and int(cases.group(1)) >= 200, output[-2000:]
    # Recorded for the issue note: how many cases ran.
    print(f"schemathesis: {cases.group(0)} cases, 0 failures")
