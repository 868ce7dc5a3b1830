"""The control plane goes away, restarts, drains, runs as replicas, serves mTLS:
grpcio's C-core xDS client keeps its last configuration meanwhile, loses no
call, and follows changes again once a control plane is back."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ecsgrpc.xds.bootstrap import bootstrap_json
from ecsgrpc_apps.local.emulator import AwsEmulator
from tests.support.agents import AgentProcess, wait_until
from tests.support.certs import make_tls_files
from tests.support.xds import ControlPlaneProcess, XdsClient, python_client
from tests.xds.conftest import NAME, TARGET, register_async

pytestmark = pytest.mark.timeout(240)
SERVICE = ("--service", f"{NAME}={TARGET}")


async def _start_agents(
    agents: Callable[..., AgentProcess], hosts: list[str]
) -> list[AgentProcess]:
    return list(await asyncio.gather(*(asyncio.to_thread(agents, h) for h in hosts)))


async def test_client_keeps_last_config_while_control_plane_is_killed_then_follows_the_restart(
    aws: AwsEmulator,
    agents: Callable[..., AgentProcess],
    control_planes: Callable[..., ControlPlaneProcess],
    xds_client: Callable[..., XdsClient],
) -> None:
    svc = await asyncio.to_thread(aws.provision_cloudmap)
    procs = await _start_agents(agents, ["127.0.17.2", "127.0.17.3"])
    for proc in procs:
        await register_async(aws, svc, proc, "us-east-1a")
    ids = {p.instance_id for p in procs}
    plane = await asyncio.to_thread(control_planes, "127.0.17.100", *SERVICE)
    client = xds_client(bootstrap_json([plane.address]), f"xds:///{NAME}")
    start = time.time()
    assert await wait_until(lambda: set(client.served(start)) == ids, 60), (
        client.stderr(),
        client.records[-3:],
    )

    plane.signal(signal.SIGKILL)
    await asyncio.to_thread(plane.wait, 10)
    killed = time.time()
    # Meanwhile a task is deregistered: nobody can tell the client, which keeps
    # calling both tasks from its last configuration, without a failed call.
    await asyncio.to_thread(aws.deregister_instance, svc, procs[0].instance_id)
    await asyncio.sleep(4)
    assert set(client.served(killed + 1)) == ids
    # Restarted under load on the same address: the client reconnects and
    # follows the change (and a new registration) it missed.
    await asyncio.to_thread(plane.start)
    newcomer = (await _start_agents(agents, ["127.0.17.4"]))[0]
    await register_async(aws, svc, newcomer, "us-east-1a")
    restarted = time.time()
    wanted = {procs[1].instance_id, newcomer.instance_id}
    assert await wait_until(lambda: set(client.served(time.time() - 1)) == wanted, 40)
    followed = time.time() - restarted
    client.stop()
    assert client.errors() == [], client.errors()[:5]
    print(f"client followed the restarted control plane in {followed:.1f}s")


async def test_replicas_a_draining_replica_hands_clients_to_another(
    aws: AwsEmulator,
    agents: Callable[..., AgentProcess],
    control_planes: Callable[..., ControlPlaneProcess],
    xds_client: Callable[..., XdsClient],
) -> None:
    svc = await asyncio.to_thread(aws.provision_cloudmap)
    procs = await _start_agents(agents, ["127.0.17.2", "127.0.17.3"])
    for proc in procs:
        await register_async(aws, svc, proc, "us-east-1a")
    first, second = await asyncio.gather(
        asyncio.to_thread(control_planes, "127.0.17.100", *SERVICE, "--drain-seconds", "1"),
        asyncio.to_thread(control_planes, "127.0.17.101", *SERVICE),
    )
    bootstrap = bootstrap_json([first.address, second.address])
    assert f"ipv4:{first.address},{second.address}" in bootstrap
    client = xds_client(bootstrap, f"xds:///{NAME}")
    start = time.time()
    ids = {p.instance_id for p in procs}
    assert await wait_until(lambda: set(client.served(start)) == ids, 60), (
        client.stderr(),
        client.records[-3:],
    )

    first.signal(signal.SIGTERM)
    assert await asyncio.to_thread(first.wait, 15) == 0
    # Changes now reach the client only through the second replica.
    newcomer = (await _start_agents(agents, ["127.0.17.4"]))[0]
    await register_async(aws, svc, newcomer, "us-east-1a")
    assert await wait_until(lambda: newcomer.instance_id in client.served(time.time() - 1), 30)
    client.stop()
    assert client.errors() == [], client.errors()[:5]


# grpcio only: grpc-js-xds 1.14 accepts only "insecure" and "google_default"
# channel credentials in its bootstrap (docs/xds.md says so).
async def test_mtls_control_plane_with_a_tls_bootstrap(
    aws: AwsEmulator,
    agents: Callable[..., AgentProcess],
    control_planes: Callable[..., ControlPlaneProcess],
    clients: list[XdsClient],
    tmp_path: Path,
) -> None:
    svc = await asyncio.to_thread(aws.provision_cloudmap)
    procs = await _start_agents(agents, ["127.0.17.2", "127.0.17.3"])
    for proc in procs:
        await register_async(aws, svc, proc, "us-east-1a")
    files = make_tls_files(tmp_path, sans=["127.0.17.100"])
    tls = (
        "--tls-cert",
        str(files.server_cert),
        "--tls-key",
        str(files.server_key),
        "--tls-ca",
        str(files.ca),
    )
    plane = await asyncio.to_thread(control_planes, "127.0.17.100", *SERVICE, *tls)
    assert "(mtls)" in plane.log_text() or "mtls" in plane.log_text().lower()
    good = python_client(
        bootstrap_json(
            [plane.address], tls_ca=files.ca, tls_cert=files.client_cert, tls_key=files.client_key
        ),
        f"xds:///{NAME}",
        tmp_path,
    )
    # Without a client certificate the control plane refuses the client: no config.
    refused = python_client(
        bootstrap_json([plane.address], tls_ca=files.ca), f"xds:///{NAME}", tmp_path
    )
    clients.extend([good, refused])
    start = time.time()
    ids = {p.instance_id for p in procs}
    assert await wait_until(lambda: set(good.served(start)) == ids, 60), good.stderr()
    good.stop()
    assert good.errors() == []
    assert refused.served() == {}
