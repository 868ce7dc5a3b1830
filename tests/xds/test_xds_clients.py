"""gRPC's own xDS clients (grpcio's C-core; grpc-js + grpc-js-xds) fed by ``ecsgrpc xds``.

Nothing of ecsgrpc runs in the client process: the resolver, the load
balancing, the priorities and the health filtering are C-core's, configured
only by what our control plane pushes. Endpoints come from the moto Cloud Map
server; the agents are real ``ecsgrpc agent`` processes.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import pytest

from ecsgrpc.xds.bootstrap import bootstrap_json
from ecsgrpc_apps.local.emulator import AwsEmulator
from tests.support.agents import AgentProcess, wait_until
from tests.support.xds import ControlPlaneProcess, XdsClient
from tests.xds.conftest import NAME, POLL, TARGET, register_async

pytestmark = pytest.mark.timeout(240)
SERVICE = ("--service", f"{NAME}={TARGET}")


async def _agents(
    agents: Callable[..., AgentProcess], hosts: list[str], **kw: object
) -> list[AgentProcess]:
    return list(await asyncio.gather(*(asyncio.to_thread(agents, h, **kw) for h in hosts)))


async def _served_by_all(client: XdsClient, ids: set[str], timeout: float) -> bool:
    start = time.time()
    return await wait_until(lambda: set(client.served(start)) >= ids, timeout)


async def test_spread_new_task_deregistered_and_draining_tasks(
    aws: AwsEmulator,
    agents: Callable[..., AgentProcess],
    control_planes: Callable[..., ControlPlaneProcess],
    xds_client: Callable[..., XdsClient],
) -> None:
    svc = await asyncio.to_thread(aws.provision_cloudmap)
    procs = await _agents(
        agents, ["127.0.17.2", "127.0.17.3", "127.0.17.4"], args=("--drain-seconds", "6")
    )
    for proc, zone in zip(procs, ("us-east-1a", "us-east-1b", "us-east-1c"), strict=True):
        await register_async(aws, svc, proc, zone)
    plane = await asyncio.to_thread(control_planes, "127.0.17.100", *SERVICE)
    client = xds_client(bootstrap_json([plane.address]), f"xds:///{NAME}")

    # Spread over all tasks: every agent serves, none more than half the calls.
    assert await _served_by_all(client, {p.instance_id for p in procs}, 60), client.stderr()
    window = time.time()
    await asyncio.sleep(2)
    served = client.served(window)
    assert set(served) == {p.instance_id for p in procs}
    assert max(served.values()) < 0.5 * sum(served.values()), served

    # A new task registered in Cloud Map gets traffic within one poll + 1 s.
    newcomer = (await _agents(agents, ["127.0.17.5"]))[0]
    await register_async(aws, svc, newcomer, "us-east-1a")
    registered = time.time()
    assert await wait_until(lambda: newcomer.instance_id in client.served(registered), POLL + 1.0)

    # A deregistered task gets no new calls once one poll + 1 s has passed.
    await asyncio.to_thread(aws.deregister_instance, svc, procs[0].instance_id)
    deregistered = time.time()
    # A draining task (SIGTERM: NOT_SERVING for 6 s while it still serves) gets
    # no new calls 1 s later: the control plane's health watch marks it DRAINING.
    procs[1].signal(signal.SIGTERM)
    drained = time.time()
    await asyncio.sleep(POLL + 2.0)
    late = time.time()
    await asyncio.sleep(2.0)
    assert procs[0].instance_id not in client.served(deregistered + POLL + 1.0)
    assert procs[1].instance_id not in client.served(drained + 1.0)
    assert set(client.served(late)) == {procs[2].instance_id, newcomer.instance_id}
    client.stop()
    assert client.errors() == [], client.errors()[:5]
    assert len(client.records) > 200


async def test_zone_preference_and_failover_to_other_zones(
    aws: AwsEmulator,
    agents: Callable[..., AgentProcess],
    control_planes: Callable[..., ControlPlaneProcess],
    xds_client: Callable[..., XdsClient],
) -> None:
    svc = await asyncio.to_thread(aws.provision_cloudmap)
    procs = await _agents(
        agents,
        ["127.0.17.2", "127.0.17.3", "127.0.17.4", "127.0.17.5"],
        args=("--drain-seconds", "3"),
    )
    zones = ("us-east-1a", "us-east-1a", "us-east-1b", "us-east-1b")
    for proc, zone in zip(procs, zones, strict=True):
        await register_async(aws, svc, proc, zone)
    in_a = {procs[0].instance_id, procs[1].instance_id}
    in_b = {procs[2].instance_id, procs[3].instance_id}
    plane = await asyncio.to_thread(control_planes, "127.0.17.100", *SERVICE)
    client_a = xds_client(
        bootstrap_json([plane.address], zone="us-east-1a", node_id="a"), f"xds:///{NAME}"
    )
    client_b = xds_client(
        bootstrap_json([plane.address], zone="us-east-1b", node_id="b"), f"xds:///{NAME}"
    )
    assert await _served_by_all(client_a, in_a, 60), client_a.stderr()
    assert await _served_by_all(client_b, in_b, 60), client_b.stderr()
    window = time.time()
    await asyncio.sleep(2)
    # Each client's calls stay in its own zone, spread over its zone's tasks.
    assert set(client_a.served(window)) == in_a
    assert set(client_b.served(window)) == in_b

    # Zone a's tasks drain: client a moves to zone b without a failed call.
    for proc in procs[:2]:
        proc.signal(signal.SIGTERM)
    assert await _served_by_all(client_a, in_b, 5)
    moved = time.time()
    await asyncio.sleep(1.0)
    assert set(client_a.served(moved + 0.5)) <= in_b
    for client in (client_a, client_b):
        client.stop()
        assert client.errors() == [], client.errors()[:5]
