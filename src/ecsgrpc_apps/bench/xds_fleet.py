"""Scenario ``xds_fleet``: one ``ecsgrpc xds`` control plane, many clients, many endpoints.

1,000 Cloud Map instances (over three zones) and 200 subscribed xDS clients
(``--quick``: 200 and 50). The clients are bare ADS streams in this process,
each subscribing to the four resources of ``xds:///workflow-agent`` like gRPC
does (node zones spread over the three zones) and ACKing every response; the
control plane is its own process, as it would be on ECS (``--no-probe``: the
endpoints are addresses nobody serves).

Measured: seconds until every client has its first load assignment; for each
change in Cloud Map (a task registered, one deregistered), seconds from the
API call until every client has received the new assignment (p50 and max
over clients; the poll interval bounds how soon the control plane can know);
the control plane's CPU (idle, polling; and per change) and memory per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import grpc

from ecsgrpc_apps.bench.results import Row, ScenarioResult, check
from ecsgrpc_apps.bench.settings import Context
from ecsgrpc_apps.bench.xds_contender import ControlPlaneProcess
from ecsgrpc_apps.local.emulator import REGION

__all__ = ["run"]

NAME = "xds_fleet"
SERVICE = "workflow-agent"
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
POLL = 1.0
COLUMNS = (
    "endpoints",
    "clients",
    "initial_sync_s",
    "update_p50_s",
    "update_max_s",
    "cp_cpu_idle_pct",
    "cp_cpu_ms_per_change",
    "cp_rss_mb",
    "cp_kb_per_client",
)
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class _AdsClient:
    """One subscribed client: ACKs everything, notes when an assignment contains a marker."""

    zone: str
    channel: grpc.aio.Channel
    assignments: int = 0
    seen: dict[bytes, float] = field(default_factory=dict)
    watch: set[bytes] = field(default_factory=set)
    gone: dict[bytes, float] = field(default_factory=dict)
    unwatch: set[bytes] = field(default_factory=set)
    task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

        from ecsgrpc.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE

        queue: asyncio.Queue[Any] = asyncio.Queue()

        def request(type_url: str, nonce: str = "", version: str = "") -> Any:
            req = discovery_pb2.DiscoveryRequest(
                type_url=type_url,
                resource_names=[SERVICE],
                response_nonce=nonce,
                version_info=version,
            )
            req.node.id = f"bench-{id(self)}"
            req.node.locality.zone = self.zone
            return req

        async def requests() -> Any:
            while True:
                yield await queue.get()

        for type_url in (LISTENER, ROUTE, CLUSTER, ENDPOINT):
            queue.put_nowait(request(type_url))
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self.channel)
        async for response in stub.StreamAggregatedResources(requests()):
            queue.put_nowait(request(response.type_url, response.nonce, response.version_info))
            if response.type_url != ENDPOINT or not response.resources:
                continue
            now = time.monotonic()
            self.assignments += 1
            body = response.resources[0].value
            # A byte search, not a parse: 200 clients decoding 1,000 endpoints
            # each would measure this process, not the control plane.
            for marker in list(self.watch):
                if marker in body:
                    self.seen[marker] = now
                    self.watch.discard(marker)
            for marker in list(self.unwatch):
                if marker not in body:
                    self.gone[marker] = now
                    self.unwatch.discard(marker)


async def _until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return False


def _address(i: int) -> str:
    return f"10.{1 + i // 65025}.{(i // 255) % 255}.{1 + i % 255}"


@dataclass
class _Fleet:
    """The Cloud Map service and a way to add and remove instances."""

    sd: Any
    service_id: str

    def register(self, i: int) -> None:
        self.sd.register_instance(
            ServiceId=self.service_id,
            InstanceId=f"task-{i}",
            Attributes={
                "AWS_INSTANCE_IPV4": _address(i),
                "AWS_INSTANCE_PORT": "50051",
                "AVAILABILITY_ZONE": ZONES[i % len(ZONES)],
            },
        )

    def register_many(self, count: int) -> None:
        for i in range(count):
            self.register(i)

    def deregister(self, i: int) -> None:
        self.sd.deregister_instance(ServiceId=self.service_id, InstanceId=f"task-{i}")


async def _changes(
    fleet: _Fleet, clients: list[_AdsClient], first_id: int, pid: int, rounds: int = 3
) -> tuple[list[float], list[float], list[float]]:
    """(p50s, maxima, cpu seconds) of each change reaching every client."""
    p50s: list[float] = []
    maxima: list[float] = []
    cpu: list[float] = []
    for new_id in range(first_id, first_id + rounds):
        marker = _address(new_id).encode()
        for c in clients:
            c.watch.add(marker)
        cpu_start = _cpu_seconds(pid)
        t0 = time.monotonic()
        await asyncio.to_thread(fleet.register, new_id)
        if await _until(lambda m=marker: all(m in c.seen for c in clients), 30):
            lat = [c.seen[marker] - t0 for c in clients]
            maxima.append(max(lat))
            p50s.append(statistics.median(lat))
        cpu.append(_cpu_seconds(pid) - cpu_start)
        for c in clients:
            c.unwatch.add(marker)
        t0 = time.monotonic()
        await asyncio.to_thread(fleet.deregister, new_id)
        if await _until(lambda m=marker: all(m in c.gone for c in clients), 30):
            lat = [c.gone[marker] - t0 for c in clients]
            maxima.append(max(lat))
            p50s.append(statistics.median(lat))
    return p50s, maxima, cpu


async def _discovered(port: int, timeout: float = 30.0) -> None:
    """Until the control plane's ADS service is SERVING (discovery has answered)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from ecsgrpc.xds.server import ADS_SERVICE

    request = health_pb2.HealthCheckRequest(service=ADS_SERVICE)
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(request, timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError("the xds control plane did not discover the fleet in time")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _sizes(ctx: Context) -> tuple[int, int, int, float]:
    """(endpoints, clients, change rounds, idle window seconds) for the settings."""
    if not ctx.settings.quick:
        return 1000, 200, 3, 5.0
    if ctx.settings.scale < 0.5:
        return 60, 20, 1, 1.0
    return 200, 50, 3, 5.0


async def run(ctx: Context) -> ScenarioResult:
    n_endpoints, n_clients, rounds, idle_window = _sizes(ctx)
    result = ScenarioResult(
        NAME, f"xDS fleet: {n_clients} clients, {n_endpoints} endpoints, one control plane", COLUMNS
    )
    result.params.update({"poll_seconds": POLL, "zones": len(ZONES)})
    emulator = await asyncio.to_thread(ctx.emulator)
    name = ctx.service_name(NAME)
    svc = await asyncio.to_thread(emulator.provision_cloudmap, "workflow.local", name)
    ctx.progress(f"{NAME}: registering {n_endpoints} instances")
    fleet = _Fleet(emulator.client("servicediscovery"), svc.service_id)
    # Cloud Map answers at most 1,000 instances: the fleet reaches n_endpoints
    # when a change adds one.
    await asyncio.to_thread(fleet.register_many, n_endpoints - 1)
    env = {
        "AWS_ENDPOINT_URL": emulator.endpoint_url,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        # The emulator takes any credentials; these are not secrets.
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    port = _free_port()
    target = f"cloudmap://workflow.local/{name}?poll={POLL:g}"
    plane = ControlPlaneProcess(target, env, port, extra=("--no-probe",), service=SERVICE)
    clients: list[_AdsClient] = []
    try:
        await asyncio.to_thread(plane.wait_serving, 30)
        pid = plane.proc.pid
        await _discovered(port)
        rss_before = _rss_kb(pid)
        ctx.progress(f"{NAME}: {n_clients} clients subscribing")
        started = time.monotonic()
        for i in range(n_clients):
            # One channel (one HTTP/2 connection) per client, as separate processes have.
            channel = grpc.aio.insecure_channel(
                f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
            )
            client = _AdsClient(ZONES[i % len(ZONES)], channel)
            client.task = asyncio.get_running_loop().create_task(client.run())
            clients.append(client)
        synced = await _until(lambda: all(c.assignments for c in clients), 120)
        initial_sync = time.monotonic() - started if synced else None
        await asyncio.sleep(min(2.0, idle_window / 2))
        rss_after = _rss_kb(pid)
        cpu0 = _cpu_seconds(pid)
        await asyncio.sleep(idle_window)
        idle_pct = 100.0 * (_cpu_seconds(pid) - cpu0) / idle_window
        ctx.progress(f"{NAME}: measuring changes")
        p50s, maxima, cpu = await _changes(fleet, clients, n_endpoints - 1, pid, rounds)
        result.rows.append(
            Row(
                "native_xds",
                {
                    "endpoints": n_endpoints,
                    "clients": n_clients,
                    "initial_sync_s": initial_sync,
                    "update_p50_s": statistics.median(p50s) if p50s else None,
                    "update_max_s": max(maxima) if maxima else None,
                    "cp_cpu_idle_pct": idle_pct,
                    "cp_cpu_ms_per_change": 1000 * statistics.median(cpu),
                    "cp_rss_mb": rss_after / 1024,
                    "cp_kb_per_client": (rss_after - rss_before) / n_clients,
                },
            )
        )
        result.targets.append(
            check(
                NAME,
                "native_xds",
                "update_max_s",
                max(maxima) if len(maxima) == 2 * rounds else None,
                "<=",
                POLL + 2.0,
                note="every change reaches every client within one poll + 2 s",
            )
        )
        result.notes.append(
            f"Changes: {len(maxima)} of {2 * rounds} reached every client. A change waits for the "
            f"control plane's next poll ({POLL:g} s), then one push per client; CPU per "
            "change includes the polls in that time."
        )
    finally:
        for c in clients:
            if c.task is not None:
                c.task.cancel()
        await asyncio.gather(*(c.task for c in clients if c.task), return_exceptions=True)
        for c in clients:
            await c.channel.close()
        await asyncio.to_thread(plane.stop)
    return result
