"""gRPC's own target names reach real servers: unix sockets, ipv4:/ipv6: lists,
``dns:host:port``, names from the hosts file; and a channel with no endpoint
says why (the discovery error) within ``connect_timeout``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

import ecsgrpc
from ecsgrpc.resolvers.hosts import HostsFile, parse_hosts
from ecsgrpc.testing import ManualResolver
from tests.support.dnsmasq import Dnsmasq

pytestmark = pytest.mark.timeout(60)


async def _server(*addresses: str) -> tuple[grpc.aio.Server, list[int]]:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)
    ports = [server.add_insecure_port(a) for a in addresses]
    await server.start()
    return server, ports


@pytest.fixture
async def health_servers(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """Health servers on a unix socket, an abstract socket, 127.0.13.7/.8 and 127.0.0.1."""
    sock = tmp_path / "agent.sock"
    abstract = f"ecsgrpc-test-{time.monotonic_ns()}"
    server, ports = await _server(
        f"unix:{sock}",
        f"unix-abstract:{abstract}",
        "127.0.13.7:0",
        "127.0.13.8:0",
        "127.0.0.1:0",
    )
    try:
        yield {
            "sock": str(sock),
            "abstract": abstract,
            "a": f"127.0.13.7:{ports[2]}",
            "b": f"127.0.13.8:{ports[3]}",
            "local_port": str(ports[4]),
        }
    finally:
        await server.stop(None)


async def _serving(target: str, *, min_ready: int = 1) -> None:
    async with ecsgrpc.connect(target, connect_timeout=10) as channel:
        await channel.channel_ready(timeout=10, min_ready=min_ready)
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_unix_socket_targets(health_servers: dict[str, str]) -> None:
    await _serving(f"unix:{health_servers['sock']}")
    await _serving(f"unix://{health_servers['sock']}")


async def test_unix_abstract_target(health_servers: dict[str, str]) -> None:
    await _serving(f"unix-abstract:{health_servers['abstract']}")


async def test_ipv4_list_balances_over_every_address(health_servers: dict[str, str]) -> None:
    target = f"ipv4:{health_servers['a']},{health_servers['b']}"
    await _serving(target, min_ready=2)


async def test_names_in_the_hosts_file_resolve_as_with_grpc(health_servers: dict[str, str]) -> None:
    if "localhost" not in parse_hosts(Path("/etc/hosts").read_text()):
        pytest.skip("this machine's /etc/hosts has no localhost entry")
    port = health_servers["local_port"]
    await _serving(f"dns:///localhost:{port}")
    await _serving(f"dns:localhost:{port}")
    # grpc's own channel agrees on the same name.
    async with grpc.aio.insecure_channel(f"dns:///localhost:{port}") as plain:
        await health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=5)


def test_hosts_file_parsing() -> None:
    text = "127.0.0.1 localhost\n::1 localhost ip6-localhost # comment\nbad line\n10.0.0.300 x\n"
    names = parse_hosts(text)
    assert names["localhost"] == ("127.0.0.1", "::1")
    assert names["ip6-localhost"] == ("::1",)
    assert "x" not in names and "bad" not in names


async def test_hosts_file_changes_are_seen(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("10.0.0.1 agent.pinned\n")
    reader = HostsFile(str(hosts))
    assert await reader.lookup("AGENT.pinned.") == ("10.0.0.1",)
    hosts.write_text("10.0.0.2 agent.pinned\n")
    import os

    os.utime(hosts, (time.time() + 5, time.time() + 5))
    assert await reader.lookup("agent.pinned") == ("10.0.0.2",)
    assert await HostsFile(str(tmp_path / "missing")).lookup("agent.pinned") == ()


async def test_no_endpoint_says_the_discovery_error_within_connect_timeout() -> None:
    resolver = ManualResolver()
    resolver.fail("cloudmap: NoRegionError: no AWS region configured")
    async with ecsgrpc.connect(resolver, connect_timeout=0.5) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        started = time.monotonic()
        with pytest.raises(ecsgrpc.NoEndpointAvailable) as caught:
            # A long deadline: discovery has nothing, so connect_timeout decides.
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=30)
        assert time.monotonic() - started < 5
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "no AWS region configured" in str(caught.value)


async def test_nxdomain_reaches_the_caller(dnsmasq: Dnsmasq) -> None:
    target = f"dns://{dnsmasq.nameserver}/nosuch.test:50051"
    async with ecsgrpc.connect(target, connect_timeout=1.5) as channel:
        started = time.monotonic()
        with pytest.raises(ecsgrpc.NoEndpointAvailable) as caught:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=30
            )
        assert time.monotonic() - started < 10
    assert "NXDOMAIN" in str(caught.value)
    assert "discovery failed" in str(caught.value)


async def test_close_grace_lets_a_call_in_flight_finish(health_servers: dict[str, str]) -> None:
    channel = ecsgrpc.connect(f"ipv4:{health_servers['a']}", connect_timeout=10)
    await channel.channel_ready(timeout=10)
    stub = health_pb2_grpc.HealthStub(channel)
    watch = stub.Watch(health_pb2.HealthCheckRequest())
    first = await watch.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    started = time.monotonic()
    await channel.close(grace=0.5)
    waited = time.monotonic() - started
    # The watch never ends by itself: close waited the grace, then cancelled it.
    assert 0.4 <= waited < 5
    with pytest.raises(ecsgrpc.NoEndpointAvailable):
        await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
