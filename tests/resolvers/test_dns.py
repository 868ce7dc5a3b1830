"""dns:/// and dns+srv:/// against a real dnsmasq: records, TTL-driven refresh, outages."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry

import ecsgrpc
from ecsgrpc.errors import ResolutionError
from ecsgrpc.resolvers import Backoff, build_resolver
from tests.resolvers.helpers import hosts, metric, watching
from tests.support.dnsmasq import Dnsmasq

pytestmark = pytest.mark.timeout(30)

FAST = {"timeout": 0.5, "backoff": Backoff(initial=0.1, maximum=0.5)}


async def test_a_records_all_of_them(dnsmasq: Dnsmasq) -> None:
    dnsmasq.set_hosts({"agent.test": ["127.0.0.2", "127.0.0.3", "::1"]})
    await asyncio.sleep(0.3)  # hostsdir is re-read by inotify
    snapshot = await ecsgrpc.resolve(f"dns://{dnsmasq.nameserver}/agent.test:50051", **FAST)
    assert {ep.address for ep in snapshot} == {"127.0.0.2:50051", "127.0.0.3:50051", "[::1]:50051"}
    assert snapshot.source == "dns"
    assert snapshot.ttl == dnsmasq.ttl


async def test_nxdomain_is_an_error_and_no_records_is_empty(dnsmasq: Dnsmasq) -> None:
    # A name that exists with only an SRV record: NOERROR, no A/AAAA data.
    await asyncio.to_thread(dnsmasq.set_srv, [("_grpc._tcp.only-srv.test", "a.test", 1, 0, 1)])
    with pytest.raises(ResolutionError, match="NXDOMAIN"):
        await ecsgrpc.resolve(f"dns://{dnsmasq.nameserver}/missing.test:1", **FAST)
    snapshot = await ecsgrpc.resolve(
        f"dns://{dnsmasq.nameserver}/_grpc._tcp.only-srv.test:1", **FAST
    )
    assert len(snapshot) == 0
    assert snapshot.ttl is None  # re-asked after negative_ttl


async def test_a_dns_change_appears_within_ttl_plus_one_second(dnsmasq: Dnsmasq) -> None:
    dnsmasq.set_hosts({"agent.test": ["127.0.0.2"]})
    await asyncio.sleep(0.3)
    registry = CollectorRegistry()
    resolver = build_resolver(
        f"dns://{dnsmasq.nameserver}/agent.test:50051", registry=registry, **FAST
    )
    async with watching(resolver) as watcher:
        await watcher.wait_for(lambda s: hosts(s) == {"127.0.0.2"}, 5)
        for wanted in ({"127.0.0.2", "127.0.0.3"}, {"127.0.0.3"}):
            dnsmasq.set_hosts({"agent.test": sorted(wanted)})
            took = await watcher.wait_for(lambda s, w=wanted: hosts(s) == w, 5)
            assert took <= dnsmasq.ttl + 1.0, took
    assert [len(s) for s in watcher.snapshots] == [1, 2, 1]
    assert metric(registry, "ecsgrpc_resolutions_total", resolver="dns", outcome="success") >= 3


async def test_dns_outage_keeps_last_known_good_and_recovers(dnsmasq: Dnsmasq) -> None:
    dnsmasq.set_hosts({"agent.test": ["127.0.0.2", "127.0.0.3"]})
    await asyncio.sleep(0.3)
    registry = CollectorRegistry()
    resolver = build_resolver(
        f"dns://{dnsmasq.nameserver}/agent.test:50051", registry=registry, **FAST
    )
    async with watching(resolver) as watcher:
        await watcher.wait_for(lambda s: len(s) == 2, 5)
        await asyncio.to_thread(dnsmasq.stop)
        deadline = time.monotonic() + 10
        while metric(registry, "ecsgrpc_resolutions_total", resolver="dns", outcome="error") < 3:
            assert time.monotonic() < deadline, "no failed resolutions counted"
            await asyncio.sleep(0.1)
        assert len(watcher.snapshots) == 1  # nothing new: the known set is kept
        dnsmasq.set_hosts({"agent.test": ["127.0.0.4"]})
        await asyncio.to_thread(dnsmasq.start)
        await watcher.wait_for(lambda s: hosts(s) == {"127.0.0.4"}, 5)
    assert [hosts(s) for s in watcher.snapshots] == [{"127.0.0.2", "127.0.0.3"}, {"127.0.0.4"}]


async def test_srv_records_give_host_and_port_per_record(dnsmasq: Dnsmasq) -> None:
    dnsmasq.set_hosts({"a.test": ["127.0.0.2"], "b.test": ["127.0.0.3"]})
    await asyncio.to_thread(
        dnsmasq.set_srv,
        [
            ("_grpc._tcp.agent.test", "a.test", 50051, 0, 10),
            ("_grpc._tcp.agent.test", "b.test", 50052, 1, 20),
        ],
    )
    snapshot = await ecsgrpc.resolve(
        f"dns+srv://{dnsmasq.nameserver}/_grpc._tcp.agent.test", **FAST
    )
    assert snapshot.source == "dns+srv"
    by_address = {ep.address: dict(ep.attributes) for ep in snapshot}
    assert by_address == {
        "127.0.0.2:50051": {"priority": "0", "weight": "10", "srv_target": "a.test"},
        "127.0.0.3:50052": {"priority": "1", "weight": "20", "srv_target": "b.test"},
    }


async def test_srv_target_that_does_not_resolve_is_skipped_and_counted(dnsmasq: Dnsmasq) -> None:
    dnsmasq.set_hosts({"a.test": ["127.0.0.2"]})
    await asyncio.to_thread(
        dnsmasq.set_srv,
        [
            ("_grpc._tcp.agent.test", "a.test", 50051, 0, 10),
            ("_grpc._tcp.agent.test", "gone.test", 50051, 0, 10),
            ("_grpc._tcp.agent.test", "a.test", 50051, 0, 10),  # a duplicate
        ],
    )
    registry = CollectorRegistry()
    snapshot = await ecsgrpc.resolve(
        f"dns+srv://{dnsmasq.nameserver}/_grpc._tcp.agent.test", registry=registry, **FAST
    )
    assert [ep.address for ep in snapshot] == ["127.0.0.2:50051"]
    skipped = "ecsgrpc_resolver_skipped_records_total"
    assert metric(registry, skipped, resolver="dns+srv", reason="srv_target_unresolved") == 1


async def test_srv_change_is_seen_by_a_watch(dnsmasq: Dnsmasq) -> None:
    dnsmasq.set_hosts({"a.test": ["127.0.0.2"], "b.test": ["127.0.0.3"]})
    await asyncio.to_thread(dnsmasq.set_srv, [("_grpc._tcp.agent.test", "a.test", 1000, 0, 1)])
    resolver = build_resolver(f"dns+srv://{dnsmasq.nameserver}/_grpc._tcp.agent.test", **FAST)
    async with watching(resolver) as watcher:
        await watcher.wait_for(lambda s: hosts(s) == {"127.0.0.2"}, 5)
        await asyncio.to_thread(
            dnsmasq.set_srv,
            [
                ("_grpc._tcp.agent.test", "a.test", 1000, 0, 1),
                ("_grpc._tcp.agent.test", "b.test", 1001, 0, 1),
            ],
        )
        await watcher.wait_for(lambda s: hosts(s) == {"127.0.0.2", "127.0.0.3"}, dnsmasq.ttl + 3)
