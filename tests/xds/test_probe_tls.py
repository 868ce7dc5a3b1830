"""Health watches of agents that serve mTLS: ``ecsgrpc xds serve --probe-tls-*``.

Real processes: two agents serving mTLS (certificate for the DNS name
``workflow-agent``, on IP addresses), found through the moto Cloud Map server;
control planes on the same Cloud Map service: one given the client TLS
material (CA, client certificate and key, server name) by ``--probe-tls-*``
flags, one by the ``WORKFLOW_SERVICE_TLS_*`` variables, and one without it;
grpcio's own xDS client (C-core) with mTLS credentials on each. One agent is
SIGTERMed (it drains: NOT_SERVING while it still serves): the control plane
with the material publishes it DRAINING and its client stops sending it new
calls; the one without it cannot open its watch (the TLS handshake fails), so
it never learns, and its client keeps calling the draining agent.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from ecsgrpc.xds.bootstrap import bootstrap_json
from ecsgrpc.xds.resources import ENDPOINT
from ecsgrpc_apps.local.emulator import AwsEmulator
from tests.support.agents import AgentProcess, wait_until
from tests.support.certs import TlsFiles, make_tls_files
from tests.support.xds import (
    ControlPlaneProcess,
    XdsClient,
    python_client,
    start_control_plane,
)
from tests.xds.conftest import NAME, TARGET, register_async

pytestmark = pytest.mark.timeout(180)

SERVICE = ("--service", f"{NAME}={TARGET}")
DRAINING = health_check_pb2.HealthStatus.DRAINING


async def published_health(plane: ControlPlaneProcess) -> dict[str, int]:
    """``host:port`` -> gRFC A42 health status, as the control plane's EDS says now."""
    async with grpc.aio.insecure_channel(plane.address) as channel:
        request = discovery_pb2.DiscoveryRequest(type_url=ENDPOINT, resource_names=[NAME])
        request.node.id = "health-reader"
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(
            iter([request]), timeout=10
        )
        response = await call.read()
        call.cancel()
    found: dict[str, int] = {}
    for packed in response.resources:
        assignment = endpoint_pb2.ClusterLoadAssignment()
        packed.Unpack(assignment)
        for locality in assignment.endpoints:
            for lb in locality.lb_endpoints:
                address = lb.endpoint.address.socket_address
                found[f"{address.address}:{address.port_value}"] = lb.health_status
    return found


async def test_draining_mtls_agent_gets_no_new_calls_only_with_probe_tls(
    aws: AwsEmulator,
    agents: Callable[..., AgentProcess],
    control_planes: Callable[..., ControlPlaneProcess],
    clients: list[XdsClient],
    tmp_path: Path,
) -> None:
    files = make_tls_files(tmp_path / "tls", sans=[NAME])
    mtls = (
        *("--tls-cert", str(files.server_cert), "--tls-key", str(files.server_key)),
        *("--tls-ca", str(files.ca)),
    )
    svc = await asyncio.to_thread(aws.provision_cloudmap)
    procs = list(
        await asyncio.gather(
            *(
                asyncio.to_thread(agents, host, args=("--drain-seconds", "6", *mtls))
                for host in ("127.0.17.20", "127.0.17.21")
            )
        )
    )
    for proc in procs:
        await register_async(aws, svc, proc, "us-east-1a")

    probe_tls = (
        *("--probe-tls-ca", str(files.ca), "--probe-tls-server-name", NAME),
        *("--probe-tls-cert", str(files.client_cert), "--probe-tls-key", str(files.client_key)),
    )
    plain_plane = await asyncio.to_thread(control_planes, "127.0.17.120", *SERVICE)
    tls_plane = await asyncio.to_thread(control_planes, "127.0.17.121", *SERVICE, *probe_tls)
    # The same material from the Workflow client's variables instead of flags.
    env_plane = await asyncio.to_thread(
        start_control_plane,
        "127.0.17.122",
        tmp_path,
        SERVICE,
        env={
            "WORKFLOW_SERVICE_TLS_CA": str(files.ca),
            "WORKFLOW_SERVICE_TLS_CERT": str(files.client_cert),
            "WORKFLOW_SERVICE_TLS_KEY": str(files.client_key),
            "WORKFLOW_SERVICE_TLS_SERVER_NAME": NAME,
        },
    )
    try:
        await _drain_and_check(files, procs, plain_plane, tls_plane, env_plane, tmp_path, clients)
    finally:
        env_plane.stop()


async def _drain_and_check(
    files: TlsFiles,
    procs: list[AgentProcess],
    plain_plane: ControlPlaneProcess,
    tls_plane: ControlPlaneProcess,
    env_plane: ControlPlaneProcess,
    tmp_path: Path,
    clients: list[XdsClient],
) -> None:
    ids = {p.instance_id for p in procs}
    draining = procs[0]
    draining_address = f"{draining.host}:{draining.port}"
    assert "health watches: mtls" in tls_plane.log_text()
    assert "health watches: mtls" in env_plane.log_text()
    assert "health watches: plaintext" in plain_plane.log_text()
    client_tls = ("--tls-ca", str(files.ca), "--tls-cert", str(files.client_cert))
    client_tls += ("--tls-key", str(files.client_key))
    watched = python_client(
        bootstrap_json([tls_plane.address]), f"xds:///{NAME}", tmp_path, args=client_tls
    )
    unwatched = python_client(
        bootstrap_json([plain_plane.address]), f"xds:///{NAME}", tmp_path, args=client_tls
    )
    clients.extend([watched, unwatched])
    start = time.time()
    assert await wait_until(lambda: set(watched.served(start)) == ids, 60), watched.stderr()
    assert await wait_until(lambda: set(unwatched.served(start)) == ids, 60), unwatched.stderr()

    # SIGTERM: the agent says NOT_SERVING and keeps serving for 6 s.
    draining.signal(signal.SIGTERM)
    drained = time.time()

    for plane in (tls_plane, env_plane):

        async def says_draining(plane: ControlPlaneProcess = plane) -> bool:
            return (await published_health(plane)).get(draining_address) == DRAINING

        assert await wait_until(says_draining, 2.0, interval=0.1), (
            await published_health(plane),
            plane.log_text()[-2000:],
        )
    await asyncio.sleep(3.0)  # still inside the agent's 6 s drain
    late = time.time()
    # With the TLS material: no new calls to the draining agent 1 s after SIGTERM.
    assert draining.instance_id not in watched.served(drained + 1.0)
    assert set(watched.served(drained + 1.0)) == {procs[1].instance_id}
    # Without it the watch never got through the handshake: the control plane
    # never learns (the endpoint is not DRAINING), and the draining agent keeps
    # getting new calls from that control plane's client.
    assert (await published_health(plain_plane)).get(draining_address) != DRAINING
    assert f"health watch of {draining_address} cannot connect" in plain_plane.log_text()
    assert "cannot connect" not in tls_plane.log_text() + env_plane.log_text()
    assert draining.instance_id in unwatched.served(drained + 1.0)
    assert late - drained < 6.0, "the check ran after the drain ended: too slow to say"
    watched.stop()
    assert watched.errors() == [], watched.errors()[:5]


NOT_PEM = str(Path(__file__))
_SERVE = ("serve", "--port", "0", "--service", "a=static:///127.0.17.2:1")


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--probe-tls-ca", "/nonexistent/ca.pem"], {}, "--probe-tls-ca='/nonexistent/ca.pem'"),
        (["--probe-tls-ca", NOT_PEM], {}, f"--probe-tls-ca={NOT_PEM!r}"),
        (
            ["--probe-tls-cert", NOT_PEM, "--probe-tls-key", NOT_PEM],
            {},
            f"--probe-tls-cert={NOT_PEM!r} / --probe-tls-key={NOT_PEM!r}",
        ),
        (["--probe-tls-cert", NOT_PEM], {}, "--probe-tls-cert is set but --probe-tls-key is not"),
        (["--probe-tls-server-name", "a b"], {}, "--probe-tls-server-name='a b'"),
        (["--no-probe", "--probe-tls-ca", NOT_PEM], {}, "--probe-tls-ca given with --no-probe"),
        # The flags' variables (the Workflow client's): named when they are the source.
        ([], {"WORKFLOW_SERVICE_TLS_CA": "/nonexistent/ca.pem"}, "WORKFLOW_SERVICE_TLS_CA="),
        (
            ["--probe-tls-ca", "/nonexistent/flag.pem"],
            {"WORKFLOW_SERVICE_TLS_CA": "/nonexistent/env.pem"},
            "--probe-tls-ca='/nonexistent/flag.pem'",
        ),
    ],
)
def test_bad_probe_tls_is_one_line_naming_flag_and_file(
    args: list[str], env: dict[str, str], named: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ecsgrpc", "xds", *_SERVE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert named in lines[0] and "Traceback" not in done.stderr, lines[0]
