"""The xDS transport protocol (state of the world) as the spec states it, over a
real socket: versions, nonces, ACK, NACK, stale nonces, subscriptions, pushes,
the node's zone, the control plane's own health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from ecsgrpc.config import ServerSettings
from ecsgrpc.xds.config import XdsService
from ecsgrpc.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE
from ecsgrpc.xds.server import ADS_SERVICE, ControlPlane
from ecsgrpc_apps.local.emulator import AwsEmulator

pytestmark = pytest.mark.timeout(60)
QUIET = 0.4  # seconds without a response that count as "none sent"


class Ads:
    """A bare ADS stream: send requests, read responses."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._requests: asyncio.Queue[Any] = asyncio.Queue()
        self._call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(
            self._iterate()
        )

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            request = await self._requests.get()
            if request is None:
                return
            yield request

    def send(self, type_url: str, names: list[str], *, nonce: str = "", version: str = "",
             zone: str = "", error: str = "") -> None:  # fmt: skip
        request = discovery_pb2.DiscoveryRequest(
            type_url=type_url, resource_names=names, response_nonce=nonce, version_info=version
        )
        request.node.id = "test-node"
        if zone:
            request.node.locality.zone = zone
        if error:
            request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        self._requests.put_nowait(request)

    _pending: asyncio.Future[Any] | None = None

    def _read(self) -> asyncio.Future[Any]:
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._call.read())
        return self._pending

    async def recv(self, timeout: float = 5.0) -> discovery_pb2.DiscoveryResponse:
        response = await asyncio.wait_for(asyncio.shield(self._read()), timeout)
        self._pending = None
        return response

    async def nothing(self) -> bool:
        """True when no response comes within QUIET seconds (a later recv gets it)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._read()), QUIET)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self._requests.put_nowait(None)
        self._call.cancel()


@contextlib.asynccontextmanager
async def plane(
    services: list[XdsService], registry: CollectorRegistry | None = None
) -> AsyncIterator[tuple[ControlPlane, grpc.aio.Channel]]:
    cp = ControlPlane(
        services,
        settings=ServerSettings(host="127.0.17.110", port=0, drain_seconds=0, grace_seconds=0.5),
        probe=False,
        registry=registry or CollectorRegistry(),
        resolver_options={"poll": 0.2},
    )
    await cp.start()
    channel = grpc.aio.insecure_channel(cp.address)
    try:
        yield cp, channel
    finally:
        await channel.close()
        await cp.stop()


STATIC = [
    XdsService("alpha", "static:///127.0.17.2:50051,127.0.17.3:50051"),
    XdsService("beta", "static:///127.0.17.4:50051"),
]


async def test_version_nonce_ack_and_no_resend_of_an_acked_version() -> None:
    async with plane(STATIC) as (_, channel):
        ads = Ads(channel)
        ads.send(LISTENER, ["alpha"])
        first = await ads.recv()
        assert first.type_url == LISTENER
        assert [r.type_url for r in first.resources] == [LISTENER]
        assert first.version_info and first.nonce
        ads.send(LISTENER, ["alpha"], nonce=first.nonce, version=first.version_info)  # ACK
        assert await ads.nothing()
        ads.close()


async def test_nack_is_not_answered_with_the_same_resources_and_is_counted() -> None:
    registry = CollectorRegistry()
    async with plane(STATIC, registry) as (_, channel):
        ads = Ads(channel)
        ads.send(CLUSTER, ["alpha"])
        first = await ads.recv()
        ads.send(CLUSTER, ["alpha"], nonce=first.nonce, error="rejected for the test")
        assert await ads.nothing()
        nacks = registry.get_sample_value(
            "ecsgrpc_xds_requests_total", {"type": "cds", "outcome": "nack"}
        )
        assert nacks == 1
        ads.close()


async def test_stale_nonce_is_ignored_and_a_subscription_change_is_answered() -> None:
    async with plane(STATIC) as (_, channel):
        ads = Ads(channel)
        ads.send(LISTENER, ["alpha"])
        first = await ads.recv()
        ads.send(LISTENER, ["alpha", "beta"], nonce=first.nonce, version=first.version_info)
        second = await ads.recv()
        assert second.nonce != first.nonce and second.version_info != first.version_info
        assert len(second.resources) == 2
        # A request carrying the older nonce is stale: ignored, whatever it names.
        ads.send(LISTENER, ["beta"], nonce=first.nonce, version=first.version_info)
        assert await ads.nothing()
        ads.close()


async def test_lds_and_cds_wildcard_and_unknown_names() -> None:
    async with plane(STATIC) as (_, channel):
        ads = Ads(channel)
        ads.send(CLUSTER, [])  # legacy wildcard: every cluster
        every = await ads.recv()
        names = []
        for resource in every.resources:
            c = cluster_pb2.Cluster()
            resource.Unpack(c)
            names.append(c.name)
        assert names == ["alpha", "beta"]
        ads.send(ROUTE, ["nope"])
        none = await ads.recv()
        assert none.type_url == ROUTE and list(none.resources) == []
        ads.close()


async def test_eds_for_the_clients_zone_and_pushes_on_discovery_changes(aws: AwsEmulator) -> None:
    svc = await asyncio.to_thread(aws.provision_cloudmap)
    for i, zone in ((2, "us-east-1a"), (3, "us-east-1b")):
        await asyncio.to_thread(
            aws.register_instance,
            svc,
            f"task-{i}",
            {"AWS_INSTANCE_IPV4": f"127.0.17.{i}", "AWS_INSTANCE_PORT": "50051",
             "AVAILABILITY_ZONE": zone},
        )  # fmt: skip
    target = "cloudmap://workflow.local/workflow-agent"
    async with plane([XdsService("agent", target)]) as (cp, channel):
        await cp.catalog.wait_ready(10)
        ads = Ads(channel)
        ads.send(ENDPOINT, ["agent"], zone="us-east-1b")
        first = await ads.recv()
        cla = endpoint_pb2.ClusterLoadAssignment()
        first.resources[0].Unpack(cla)
        assert {loc.locality.zone: loc.priority for loc in cla.endpoints} == {
            "us-east-1a": 1,
            "us-east-1b": 0,
        }
        ads.send(ENDPOINT, ["agent"], nonce=first.nonce, version=first.version_info)
        await asyncio.to_thread(aws.deregister_instance, svc, "task-3")
        pushed = await ads.recv(timeout=10)  # one poll later, unasked
        cla = endpoint_pb2.ClusterLoadAssignment()
        pushed.resources[0].Unpack(cla)
        assert [loc.locality.zone for loc in cla.endpoints] == ["us-east-1a"]
        assert [loc.priority for loc in cla.endpoints] == [0]
        assert pushed.version_info != first.version_info
        ads.close()


async def test_own_health_and_incremental_xds_refused() -> None:
    async with plane(STATIC) as (cp, channel):
        assert await cp.catalog.wait_ready(5)
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(50):  # readiness is set right after the first answers
            reply = await health.Check(health_pb2.HealthCheckRequest(service=ADS_SERVICE))
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                break
            await asyncio.sleep(0.05)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        delta = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources(
            iter([discovery_pb2.DeltaDiscoveryRequest(type_url=LISTENER)])
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in delta:
                pass
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
