"""BalancedChannel against real agents (processes and in-process servers) on loopback."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from ecsgrpc.balancing.channel import BalancedChannel
from ecsgrpc.balancing.outlier import OutlierConfig
from ecsgrpc.balancing.retry import RetryPolicy
from ecsgrpc.endpoints import Endpoint
from ecsgrpc.errors import NoEndpointAvailable, StreamInterrupted
from ecsgrpc.testing import ManualResolver
from ecsgrpc_apps.workflow import pb2, pb2_grpc
from ecsgrpc_apps.workflow.agent import WorkflowAgentServicer
from ecsgrpc_apps.workflow.settings import AgentSettings
from tests.support.agents import AgentProcess, wait_until
from tests.support.load import Load, conversation, stream_call, unary_call
from tests.support.servers import FailingAgent, echo_service, running_server

pytestmark = pytest.mark.timeout(90)


def _endpoint(agent: AgentProcess, zone: str | None = None) -> Endpoint:
    attrs = {"instance_id": agent.instance_id}
    if zone:
        attrs["availability_zone"] = zone
    return Endpoint(agent.host, agent.port, attrs)


def _channel(resolver: ManualResolver, **kw: object) -> BalancedChannel:
    kw.setdefault("registry", CollectorRegistry())
    return BalancedChannel(resolver, target="test", detect_ecs_zone=False, **kw)  # type: ignore[arg-type]


async def test_round_robin_spreads_3000_unary_calls_evenly(
    agents: Callable[..., AgentProcess],
) -> None:
    procs = [agents(f"127.0.0.{i}") for i in (2, 3, 4)]
    async with _channel(ManualResolver(map(_endpoint, procs)), policy="round_robin") as ch:
        assert await wait_until(lambda: ch.ready_count == 3, 10)
        stub = pb2_grpc.WorkflowAgentStub(ch)
        counts: Counter[str] = Counter()

        async def worker() -> None:
            for _ in range(300):
                counts[(await unary_call(stub)).served_by] += 1

        await asyncio.gather(*(worker() for _ in range(10)))
    assert sum(counts.values()) == 3000
    assert set(counts) == {p.instance_id for p in procs}
    assert max(counts.values()) / min(counts.values()) <= 1.1, counts


async def test_least_request_gives_a_20x_slower_agent_little_traffic(
    agents: Callable[..., AgentProcess],
) -> None:
    fast = [agents(f"127.0.0.{i}", args=("--event-delay", "0.002")) for i in (2, 3)]
    slow = agents("127.0.0.4", args=("--event-delay", "0.04"))
    resolver = ManualResolver(map(_endpoint, [*fast, slow]))
    async with _channel(resolver, policy="least_request") as ch:
        assert await wait_until(lambda: ch.ready_count == 3, 10)
        async with Load(ch, unary=0, streams=12, words=5) as load:
            await asyncio.sleep(4)
        outcomes = await load.stop()
    assert all(o.error is None for o in outcomes)
    counts = Counter(o.served_by for o in outcomes)
    share = counts[slow.instance_id] / sum(counts.values())
    assert share < 0.15, counts


async def test_sigkill_under_load_fails_no_call_that_had_not_yet_answered(
    agents: Callable[..., AgentProcess],
) -> None:
    procs = [agents(f"127.0.0.{i}", args=("--event-delay", "0.01")) for i in (2, 3, 4)]
    victim = procs[0]
    async with _channel(ManualResolver(map(_endpoint, procs))) as ch:
        assert await wait_until(lambda: ch.ready_count == 3, 10)
        async with Load(ch, unary=6, streams=6, words=8) as load:
            await asyncio.sleep(1.5)
            victim.kill()
            killed_at = time.monotonic()
            await asyncio.sleep(2.0)
        outcomes = await load.stop()
    unary = [o for o in outcomes if o.kind == "unary"]
    streams = [o for o in outcomes if o.kind == "stream"]
    assert len(unary) > 200 and len(streams) > 50
    assert [o for o in unary if o.error] == []
    # A stream fails only if it had already produced output, and then never duplicates it.
    assert [o for o in streams if o.error and not o.interrupted] == []
    for o in streams:
        assert o.sequences == list(range(len(o.sequences)))
        if not o.error:
            assert len(o.sequences) == 10
    # Traffic left the dead task: nothing started 0.5 s after the kill was served there.
    late = [o for o in outcomes if o.started > killed_at + 0.5]
    assert late and all(o.served_by != victim.instance_id for o in late)


async def test_stream_cut_after_output_fails_once_and_is_never_replayed(
    agents: Callable[..., AgentProcess],
) -> None:
    victim = agents("127.0.0.5", args=("--event-delay", "0.1"))
    spare = agents("127.0.0.6")
    registry = CollectorRegistry()
    async with _channel(ManualResolver([_endpoint(victim)]), registry=registry) as ch:
        await ch.channel_ready(timeout=10)
        call = pb2_grpc.WorkflowAgentStub(ch).ProcessConversation(
            conversation(50, "cut"), timeout=20
        )
        received = [await call.read() for _ in range(3)]
        # Another endpoint is available: a (wrong) replay would succeed there.
        ch._resolver.update([_endpoint(victim), _endpoint(spare)])  # type: ignore[attr-defined]
        victim.kill()
        with pytest.raises(StreamInterrupted) as info:
            while await call.read() is not grpc.aio.EOF:
                pass
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "not retried" in (info.value.details() or "")
    assert [e.sequence for e in received] == [0, 1, 2]
    assert registry.get_sample_value(
        "ecsgrpc_client_retries_total", {"method": "/workflow.v1.WorkflowAgent/ProcessConversation"}
    ) in (None, 0.0)
    assert "cut" not in spare.log_text()


async def test_sigterm_drain_fails_no_call_and_moves_traffic_at_once(
    agents: Callable[..., AgentProcess],
) -> None:
    procs = [
        agents(
            f"127.0.0.{i}",
            args=("--event-delay", "0.01", "--drain-seconds", "1.5", "--grace-seconds", "3"),
        )
        for i in (2, 3, 4)
    ]
    victim = procs[1]
    async with _channel(ManualResolver(map(_endpoint, procs))) as ch:
        assert await wait_until(lambda: ch.ready_count == 3, 10)
        async with Load(ch, unary=6, streams=6, words=8) as load:
            await asyncio.sleep(1.0)
            victim.signal(signal.SIGTERM)
            signalled = time.monotonic()
            await asyncio.sleep(3.0)
        outcomes = await load.stop()
    assert [o for o in outcomes if o.error] == []
    late = [o for o in outcomes if o.started > signalled + 0.1]
    assert late and all(o.served_by != victim.instance_id for o in late)
    assert await asyncio.to_thread(victim.wait, 10) == 0


async def test_not_serving_leaves_the_picker_within_100ms_and_recovery_returns_it() -> None:
    servicers = [WorkflowAgentServicer(AgentSettings(instance_id=f"ip-{i}")) for i in (2, 3)]
    async with (
        running_server("127.0.0.2", servicers[0]) as s2,
        running_server("127.0.0.3", servicers[1]) as s3,
    ):
        resolver = ManualResolver([Endpoint("127.0.0.2", s2.port), Endpoint("127.0.0.3", s3.port)])
        async with _channel(resolver) as ch:
            await ch.channel_ready(timeout=10)
            assert await wait_until(lambda: ch.ready_count == 2, 5)
            stub = pb2_grpc.WorkflowAgentStub(ch)
            flipped = time.monotonic()
            await s2.set_serving(False)
            assert await wait_until(lambda: ch.ready_count == 1, 1, interval=0.002)
            assert time.monotonic() - flipped < 0.1
            served = Counter([(await unary_call(stub)).served_by for _ in range(200)])
            assert served == {"ip-3": 200}
            await s2.set_serving(True)
            assert await wait_until(lambda: ch.ready_count == 2, 1)
            served = Counter([(await unary_call(stub)).served_by for _ in range(200)])
            assert served["ip-2"] > 50


async def test_deadline_covers_every_attempt() -> None:
    slow_failers = [
        FailingAgent(f"f{i}", code=grpc.StatusCode.UNAVAILABLE, delay=0.15) for i in (2, 3, 4)
    ]
    async with (
        running_server("127.0.0.2", slow_failers[0]) as a,
        running_server("127.0.0.3", slow_failers[1]) as b,
        running_server("127.0.0.4", slow_failers[2]) as c,
    ):
        resolver = ManualResolver(
            [Endpoint(f"127.0.0.{i}", s.port) for i, s in zip((2, 3, 4), (a, b, c), strict=True)]
        )
        policy = RetryPolicy(max_attempts=10)
        async with _channel(resolver, retry=policy, outlier=OutlierConfig(enabled=False)) as ch:
            await ch.channel_ready(timeout=10)
            stub = pb2_grpc.WorkflowAgentStub(ch)
            for _ in range(5):
                started = time.monotonic()
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.DescribeAgent(pb2.DescribeAgentRequest(), timeout=0.2)
                elapsed = time.monotonic() - started
                assert elapsed < 0.25, elapsed
                assert info.value.code() in (
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.UNAVAILABLE,
                )
    assert sum(s.attempts for s in slow_failers) >= 5 * 2  # it did retry within the deadline


async def test_waiting_for_an_endpoint_respects_the_deadline_or_fails_fast() -> None:
    async with _channel(ManualResolver([])) as ch:
        stub = pb2_grpc.WorkflowAgentStub(ch)
        started = time.monotonic()
        with pytest.raises(NoEndpointAvailable) as info:
            await stub.DescribeAgent(pb2.DescribeAgentRequest(), timeout=0.2)
        assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert 0.19 < time.monotonic() - started < 0.25
        started = time.monotonic()
        with pytest.raises(NoEndpointAvailable) as info:
            await stub.DescribeAgent(pb2.DescribeAgentRequest(), wait_for_ready=False)
        assert time.monotonic() - started < 0.05
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "no ready endpoint for test" in str(info.value)
        assert "returned no endpoints" in str(info.value)


async def test_retry_budget_caps_retries_when_every_endpoint_fails() -> None:
    failers = [FailingAgent(f"f{i}", code=grpc.StatusCode.UNAVAILABLE) for i in (2, 3)]
    async with (
        running_server("127.0.0.2", failers[0]) as a,
        running_server("127.0.0.3", failers[1]) as b,
    ):
        resolver = ManualResolver([Endpoint("127.0.0.2", a.port), Endpoint("127.0.0.3", b.port)])
        policy = RetryPolicy(
            max_attempts=5,
            budget_ratio=0.2,
            budget_min_per_second=1,
            budget_window_seconds=10,
            initial_backoff=0.001,
        )
        async with _channel(resolver, retry=policy, outlier=OutlierConfig(enabled=False)) as ch:
            await ch.channel_ready(timeout=10)
            stub = pb2_grpc.WorkflowAgentStub(ch)
            calls = 200
            results = [await unary_call(stub) for _ in range(calls)]
    assert all(r.error == "UNAVAILABLE" for r in results)
    attempts = sum(f.attempts for f in failers)
    retries = attempts - calls
    assert retries > 0
    assert retries <= 10 + 0.2 * calls  # floor (1/s x 10 s) + 20 %; unbudgeted: 4 x 200


async def test_outlier_detection_ejects_an_endpoint_that_fails_while_healthy() -> None:
    bad = FailingAgent("bad", code=grpc.StatusCode.UNAVAILABLE)
    good = WorkflowAgentServicer(AgentSettings(instance_id="good"))
    registry = CollectorRegistry()
    async with (
        running_server("127.0.0.2", bad) as a,
        running_server("127.0.0.3", good) as b,
    ):
        resolver = ManualResolver([Endpoint("127.0.0.2", a.port), Endpoint("127.0.0.3", b.port)])
        outlier = OutlierConfig(consecutive_failures=3, base_ejection_seconds=0.5)
        async with _channel(resolver, outlier=outlier, registry=registry) as ch:
            await ch.channel_ready(timeout=10)
            assert await wait_until(lambda: ch.ready_count == 2, 5)
            stub = pb2_grpc.WorkflowAgentStub(ch)
            results = [await unary_call(stub) for _ in range(100)]
            assert all(r.served_by == "good" for r in results)  # retried elsewhere
            assert bad.attempts <= 4
            status = {s.address: s for s in ch.endpoints()}
            assert status[f"127.0.0.2:{a.port}"].ejected
            # After the ejection time it comes back (and is ejected again while it fails).
            bad.failing = False
            assert await wait_until(lambda: ch.ready_count == 2, 2)
            results = [await unary_call(stub) for _ in range(100)]
            assert {r.served_by for r in results} == {"good", "bad"}
    assert registry.get_sample_value("ecsgrpc_endpoint_ejections_total", {"target": "test"}) == 1


async def test_a_stub_of_another_service_works_unchanged(
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents("127.0.0.7")
    async with _channel(ManualResolver([_endpoint(agent)])) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=5)
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()


async def test_client_streaming_kinds_work_through_the_channel() -> None:
    servicer = WorkflowAgentServicer(AgentSettings(instance_id="echo"))
    async with running_server("127.0.0.8", servicer, echo_service()) as server:
        async with _channel(ManualResolver([Endpoint("127.0.0.8", server.port)])) as ch:
            total = ch.stream_unary("/test.Echo/Sum")
            assert await total(iter([b"1", b"2", b"39"]), timeout=5) == b"42"
            echo = ch.stream_stream("/test.Echo/Echo")
            replies = [r async for r in echo(iter([b"a", b"b", b"c"]), timeout=5)]
            assert replies == [b"a", b"b", b"c"]


async def test_removed_endpoint_finishes_in_flight_then_closes(
    agents: Callable[..., AgentProcess],
) -> None:
    old = agents("127.0.0.2", args=("--event-delay", "0.05"))
    new = agents("127.0.0.3")
    resolver = ManualResolver([_endpoint(old)])
    async with _channel(resolver) as ch:
        await ch.channel_ready(timeout=10)
        stub = pb2_grpc.WorkflowAgentStub(ch)
        long_call = asyncio.create_task(stream_call(stub, 20, "long"))
        await asyncio.sleep(0.3)
        resolver.update([_endpoint(new)])
        assert await wait_until(
            lambda: (
                ch.ready_count == 1
                and any(s.address == new.address and s.pickable for s in ch.endpoints())
            ),
            5,
        )
        draining = [s for s in ch.endpoints() if s.address == old.address]
        assert draining and draining[0].draining and draining[0].in_flight == 1
        quick = await unary_call(stub)
        assert quick.served_by == new.instance_id
        finished = await long_call
        assert finished.error is None and finished.sequences == list(range(22))
        assert finished.served_by == old.instance_id
        assert await wait_until(lambda: all(s.address != old.address for s in ch.endpoints()), 2)


async def test_new_endpoint_gets_traffic_quickly(agents: Callable[..., AgentProcess]) -> None:
    first, second = agents("127.0.0.2"), agents("127.0.0.3")
    resolver = ManualResolver([_endpoint(first)])
    async with _channel(resolver) as ch:
        stub = pb2_grpc.WorkflowAgentStub(ch)
        assert (await unary_call(stub)).served_by == first.instance_id
        added = time.monotonic()
        resolver.update([_endpoint(first), _endpoint(second)])
        seen = False
        while time.monotonic() - added < 1.0 and not seen:
            seen = (await unary_call(stub)).served_by == second.instance_id
        assert seen


async def test_zone_preference_keeps_calls_in_the_callers_zone(
    agents: Callable[..., AgentProcess],
) -> None:
    a1, a2, b1 = agents("127.0.0.2"), agents("127.0.0.3"), agents("127.0.0.4")
    resolver = ManualResolver([_endpoint(a1, "az-a"), _endpoint(a2, "az-a"), _endpoint(b1, "az-b")])
    async with _channel(resolver, zone="az-a") as ch:
        await ch.channel_ready(timeout=10)
        assert await wait_until(lambda: ch.ready_count == 3, 5)
        stub = pb2_grpc.WorkflowAgentStub(ch)
        served = Counter([(await unary_call(stub)).served_by for _ in range(200)])
        assert set(served) == {a1.instance_id, a2.instance_id}
        # Not enough left in zone: spread again rather than overload one task.
        a2.kill()
        assert await wait_until(lambda: ch.ready_count == 2, 5)
        served = Counter([(await unary_call(stub)).served_by for _ in range(200)])
        assert set(served) == {a1.instance_id, b1.instance_id}


async def test_metrics_describe_calls_and_endpoints(agents: Callable[..., AgentProcess]) -> None:
    registry = CollectorRegistry()
    procs = [agents(f"127.0.0.{i}") for i in (2, 3)]
    async with _channel(ManualResolver(map(_endpoint, procs)), registry=registry) as ch:
        await ch.channel_ready(timeout=10)
        assert await wait_until(lambda: ch.ready_count == 2, 5)
        stub = pb2_grpc.WorkflowAgentStub(ch)
        for _ in range(10):
            await unary_call(stub)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.ProcessConversation(pb2.ConversationRequest(), timeout=5).read()
        sample = registry.get_sample_value
        method = "/workflow.v1.WorkflowAgent/DescribeAgent"
        assert (
            sample("ecsgrpc_client_call_duration_seconds_count", {"method": method, "code": "OK"})
            == 10
        )
        assert (
            sample(
                "ecsgrpc_client_failures_total",
                {
                    "method": "/workflow.v1.WorkflowAgent/ProcessConversation",
                    "reason": "invalid_argument",
                },
            )
            == 1
        )
        assert sample("ecsgrpc_endpoints", {"target": "test", "state": "ready"}) == 2
        assert sample("ecsgrpc_client_calls_in_flight", {"target": "test"}) == 0


async def test_idempotent_methods_also_retry_their_transient_codes() -> None:
    busy = FailingAgent("busy", code=grpc.StatusCode.RESOURCE_EXHAUSTED)
    calm = WorkflowAgentServicer(AgentSettings(instance_id="calm"))
    method = "/workflow.v1.WorkflowAgent/DescribeAgent"
    async with (
        running_server("127.0.0.2", busy) as a,
        running_server("127.0.0.3", calm) as b,
    ):
        endpoints = [Endpoint("127.0.0.2", a.port), Endpoint("127.0.0.3", b.port)]
        plain = _channel(ManualResolver(endpoints), policy="round_robin")
        marked = _channel(
            ManualResolver(endpoints), policy="round_robin", idempotent_methods=[method]
        )
        async with plain, marked:
            await plain.channel_ready(timeout=10, min_ready=2)
            await marked.channel_ready(timeout=10, min_ready=2)
            plain_results = [await unary_call(pb2_grpc.WorkflowAgentStub(plain)) for _ in range(20)]
            marked_results = [
                await unary_call(pb2_grpc.WorkflowAgentStub(marked)) for _ in range(20)
            ]
    # Not idempotent: RESOURCE_EXHAUSTED reaches the caller (about half the calls).
    assert {r.error for r in plain_results} == {None, "RESOURCE_EXHAUSTED"}
    # Marked idempotent: retried on the other endpoint, every call succeeds.
    assert [r.error for r in marked_results] == [None] * 20
    assert {r.served_by for r in marked_results} == {"calm"}


async def test_weights_from_endpoint_attributes_shape_round_robin(
    agents: Callable[..., AgentProcess],
) -> None:
    heavy, light = agents("127.0.0.2"), agents("127.0.0.3")
    resolver = ManualResolver(
        [
            Endpoint(heavy.host, heavy.port, {"instance_id": heavy.instance_id, "weight": "3"}),
            Endpoint(light.host, light.port, {"instance_id": light.instance_id, "weight": "1"}),
        ]
    )
    async with _channel(resolver, policy="round_robin") as ch:
        await ch.channel_ready(timeout=10, min_ready=2)
        stub = pb2_grpc.WorkflowAgentStub(ch)
        served = Counter([(await unary_call(stub)).served_by for _ in range(400)])
    assert served[heavy.instance_id] == 300
    assert served[light.instance_id] == 100


async def test_channel_ready_that_times_out_says_how_long_it_waited() -> None:
    # A live endpoint is added 0.6 s into the wait and turns ready (the picker
    # changes, the wait starts over inside); a second endpoint never does: the
    # error counts the whole wait, not the part after the last change.
    async with running_server("127.0.0.1", WorkflowAgentServicer(AgentSettings())) as server:
        live = Endpoint("127.0.0.1", server.port)
        with socket.socket() as closed:  # a port nothing listens on
            closed.bind(("127.0.0.1", 0))
            dead = Endpoint("127.0.0.1", closed.getsockname()[1])
        resolver = ManualResolver([dead])
        async with _channel(resolver) as ch:
            loop = asyncio.get_running_loop()
            loop.call_later(0.6, resolver.update, [live, dead])
            started = time.monotonic()
            with pytest.raises(NoEndpointAvailable) as info:
                await ch.channel_ready(timeout=1.5, min_ready=2)
            waited = time.monotonic() - started
            assert any(e.pickable for e in ch.endpoints())  # the picker did change
    said = float(re.search(r"after (\d+\.\d+)s", str(info.value)).group(1))  # type: ignore[union-attr]
    assert abs(said - waited) < 0.2, (said, waited, str(info.value))
    assert "fewer than 2 ready endpoints for test" in str(info.value)
