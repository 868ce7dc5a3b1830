"""The balanced channel over real discovery: the moto Cloud Map server and dnsmasq."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

import ecsgrpc
from ecsgrpc_apps.local.emulator import AwsEmulator, CloudMapService
from ecsgrpc_apps.workflow import workflow_stub
from tests.support.agents import AgentProcess, wait_until
from tests.support.dnsmasq import Dnsmasq
from tests.support.load import Load, unary_call

pytestmark = pytest.mark.timeout(120)
POLL = 0.5


def _register(aws: AwsEmulator, svc: CloudMapService, agent: AgentProcess, zone: str) -> None:
    aws.register_instance(
        svc,
        agent.instance_id,
        {
            "AWS_INSTANCE_IPV4": agent.host,
            "AWS_INSTANCE_PORT": str(agent.port),
            "AVAILABILITY_ZONE": zone,
        },
    )


def _common_port(hosts: list[str]) -> int:
    """A port free on every one of ``hosts`` (A records share one port)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for host in hosts[1:]:
                with socket.socket() as s:
                    s.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no common free port")


async def test_cloudmap_discovery_follows_registration_and_survives_a_kill(
    aws: AwsEmulator, agents: Callable[..., AgentProcess]
) -> None:
    svc = await asyncio.to_thread(aws.provision_cloudmap)
    procs = [agents(f"127.0.0.{i}") for i in (2, 3, 4)]
    for proc, zone in zip(procs, ("us-east-1a", "us-east-1b", "us-east-1a"), strict=True):
        await asyncio.to_thread(_register, aws, svc, proc, zone)
    target = f"cloudmap://workflow.local/workflow-agent?poll={POLL}"
    async with ecsgrpc.connect(target, registry=CollectorRegistry()) as channel:
        await channel.channel_ready(timeout=10, min_ready=3)
        zones = Counter(s.zone for s in channel.endpoints())
        assert zones == {"us-east-1a": 2, "us-east-1b": 1}
        stub = workflow_stub(channel)
        served = Counter([(await unary_call(stub)).served_by for _ in range(300)])
        assert set(served) == {p.instance_id for p in procs}

        # A task killed while still registered: health takes it out, no call fails.
        async with Load(channel, unary=4, streams=4, words=6) as load:
            await asyncio.sleep(0.5)
            procs[0].kill()
            await asyncio.sleep(1.5)
            # A new task registered in Cloud Map gets traffic within one poll + 1 s.
            # Started off the event loop: a blocking start would stall the load.
            newcomer = await asyncio.to_thread(agents, "127.0.0.5")
            await asyncio.to_thread(_register, aws, svc, newcomer, "us-east-1b")
            registered = time.monotonic()
            assert await wait_until(
                lambda: any(o.served_by == newcomer.instance_id for o in load.outcomes),
                POLL + 1.0,
                interval=0.01,
            )
            first_traffic = time.monotonic() - registered
        outcomes = await load.stop()
    # What can be promised when a task dies mid-call: unary calls are retried
    # elsewhere (nothing of them reached the caller), a stream that had not
    # sent anything yet is retried too, and a stream that had is never
    # replayed (it ends with StreamInterrupted; the caller saw no duplicate).
    assert [o for o in outcomes if o.kind == "unary" and o.error] == []
    streams = [o for o in outcomes if o.kind == "stream"]
    assert [o for o in streams if o.error and not o.sequences] == []
    assert [o for o in streams if o.error and not o.interrupted] == []
    for stream in streams:
        assert stream.sequences == sorted(set(stream.sequences)), stream.sequences
    # Only streams in flight on the killed task may end early: at most one per stream worker.
    assert len([o for o in streams if o.error]) <= 4
    assert first_traffic <= POLL + 1.0


async def test_cloudmap_outage_of_30s_under_load_fails_no_call(
    aws: AwsEmulator, agents: Callable[..., AgentProcess]
) -> None:
    svc = await asyncio.to_thread(aws.provision_cloudmap)
    procs = [agents(f"127.0.0.{i}") for i in (2, 3)]
    for proc in procs:
        await asyncio.to_thread(_register, aws, svc, proc, "us-east-1a")
    target = f"cloudmap://workflow.local/workflow-agent?poll={POLL}"
    async with ecsgrpc.connect(target, registry=CollectorRegistry()) as channel:
        await channel.channel_ready(timeout=10, min_ready=2)
        async with Load(channel, unary=2, streams=2, words=4) as load:
            await asyncio.sleep(0.5)
            aws.stop()
            try:
                await asyncio.sleep(30)
                assert channel.ready_count == 2  # last-known-good kept
            finally:
                aws.start()
            # Discovery resumes: a deregistration is seen again.
            await asyncio.to_thread(aws.deregister_instance, svc, procs[1].instance_id)
            # Backoff is capped at 10 s, so the resolver is back within ~10 s + one poll.
            assert await wait_until(lambda: channel.ready_count == 1, POLL + 12)
            await asyncio.sleep(0.5)
        outcomes = await load.stop()
    assert len(outcomes) > 100
    assert [o for o in outcomes if o.error] == []


async def test_dns_discovery_spreads_evenly_and_sees_a_new_record_within_ttl(
    dnsmasq: Dnsmasq, agents: Callable[..., AgentProcess]
) -> None:
    hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
    port = _common_port(hosts)
    procs = [agents(h, port=port) for h in hosts]
    dnsmasq.set_hosts({"agents.test": hosts[:3]})
    target = f"dns://{dnsmasq.nameserver}/agents.test:{port}"
    async with ecsgrpc.connect(target, policy="round_robin", registry=CollectorRegistry()) as ch:
        await ch.channel_ready(timeout=10, min_ready=3)
        stub = workflow_stub(ch)
        counts: Counter[str] = Counter()

        async def worker() -> None:
            for _ in range(300):
                counts[(await unary_call(stub)).served_by] += 1

        await asyncio.gather(*(worker() for _ in range(10)))
        assert sum(counts.values()) == 3000
        assert max(counts.values()) / min(counts.values()) <= 1.1, counts

        dnsmasq.set_hosts({"agents.test": hosts})
        changed = time.monotonic()
        seen = False
        while not seen and time.monotonic() - changed < dnsmasq.ttl + 1.5:
            seen = (await unary_call(stub)).served_by == procs[3].instance_id
            await asyncio.sleep(0.005)
        assert seen
        assert time.monotonic() - changed <= dnsmasq.ttl + 1.0 + 0.5  # + load slack


async def test_an_endpoint_that_stops_serving_makes_discovery_look_again_at_once(
    aws: AwsEmulator, agents: Callable[..., AgentProcess]
) -> None:
    """A deploy faster than the poll interval: the old task's NOT_SERVING triggers a
    resolution (gRPC's ResolveNow), so the new task is found in about a second, not
    after the 30 s poll."""
    svc = await asyncio.to_thread(aws.provision_cloudmap)
    old = agents("127.0.0.2", args=("--drain-seconds", "3", "--grace-seconds", "1"))
    await asyncio.to_thread(_register, aws, svc, old, "us-east-1a")
    target = "cloudmap://workflow.local/workflow-agent?poll=30"
    async with ecsgrpc.connect(target, registry=CollectorRegistry()) as channel:
        await channel.channel_ready(timeout=10)
        stub = workflow_stub(channel)
        new = await asyncio.to_thread(agents, "127.0.0.3")
        await asyncio.to_thread(_register, aws, svc, new, "us-east-1a")
        await asyncio.to_thread(aws.deregister_instance, svc, old.instance_id)
        old.signal(signal.SIGTERM)  # ECS: deregister, then SIGTERM; NOT_SERVING at once
        stopped = time.monotonic()
        assert await wait_until(
            lambda: any(s.address == new.address and s.pickable for s in channel.endpoints()),
            2.5,
        ), channel.endpoints()
        assert time.monotonic() - stopped < 2.5  # the poll interval is 30 s
        results = [await unary_call(stub) for _ in range(20)]
    assert {r.served_by for r in results} == {new.instance_id}
    assert all(r.error is None for r in results)
