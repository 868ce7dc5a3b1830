"""The API gateway on ``--target xds:///workflow-agent``: gRPC's own xDS client
inside the gateway, fed by a control plane over moto Cloud Map, serves HTTP
conversations from every agent; without a bootstrap it fails at start."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ecsgrpc_apps.local.emulator import AwsEmulator
from tests.gateway.support import conversation
from tests.support.agents import AgentProcess, wait_until
from tests.support.xds import ControlPlaneProcess
from tests.xds.conftest import NAME, TARGET, register_async

pytestmark = pytest.mark.timeout(180)
_SERVING = re.compile(r"gateway serving on http://(\S+)")


def _gateway(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / f"gateway-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ecsgrpc", "gateway", "--host", "127.0.17.130", "--port", "0",
             "--target", f"xds:///{NAME}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )  # fmt: skip
    return proc, log


async def test_gateway_serves_through_xds(
    aws: AwsEmulator,
    agents: Callable[..., AgentProcess],
    control_planes: Callable[..., ControlPlaneProcess],
    tmp_path: Path,
) -> None:
    svc = await asyncio.to_thread(aws.provision_cloudmap)
    procs = [await asyncio.to_thread(agents, h) for h in ("127.0.17.2", "127.0.17.3")]
    for proc in procs:
        await register_async(aws, svc, proc, "us-east-1a")
    plane = await asyncio.to_thread(control_planes, "127.0.17.100", "--service", f"{NAME}={TARGET}")
    gw, log = _gateway(tmp_path, {"ECSGRPC_XDS_SERVERS": plane.address})
    try:
        assert await wait_until(lambda: _SERVING.search(log.read_text()), 60), log.read_text()
        url = "http://" + _SERVING.search(log.read_text()).group(1)  # type: ignore[union-attr]
        served = set()
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            for i in range(20):
                reply = await http.post("/v1/conversations", json=conversation(f"hello {i}"))
                assert reply.status_code == 200, reply.text
                served.add(reply.json()["served_by"])
        assert served == {p.instance_id for p in procs}
    finally:
        gw.kill()
        gw.wait(10)


def test_gateway_without_a_bootstrap_fails_at_start_naming_the_variable(tmp_path: Path) -> None:
    env = {"ECSGRPC_XDS_SERVERS": "", "GRPC_XDS_BOOTSTRAP_CONFIG": "", "GRPC_XDS_BOOTSTRAP": ""}
    gw, log = _gateway(tmp_path, env)
    try:
        assert gw.wait(30) == 2
    finally:
        if gw.poll() is None:
            gw.kill()
            gw.wait(10)
    text = log.read_text()
    assert "ECSGRPC_XDS_SERVERS" in text and "Traceback" not in text
