"""OpenTelemetry in one process: the balanced channel's spans and attempt events, the
server's spans, W3C trace context in gRPC metadata, gRFC A66 metric names.

Real servers on loopback; the OpenTelemetry SDK's in-memory exporter and
metric reader, handed to the channel and servers (no global provider is set,
so other tests are not traced).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from ecsgrpc.balancing.channel import BalancedChannel
from ecsgrpc.config import ServerSettings
from ecsgrpc.endpoints import Endpoint
from ecsgrpc.server import Server, ServiceSpec
from ecsgrpc.telemetry import Telemetry
from ecsgrpc.testing import ManualResolver
from ecsgrpc_apps.workflow import pb2, pb2_grpc
from ecsgrpc_apps.workflow.agent import WorkflowAgentServicer, agent_service
from ecsgrpc_apps.workflow.settings import AgentSettings
from tests.support.agents import wait_until
from tests.support.servers import FailingAgent

pytestmark = pytest.mark.timeout(60)

GOOD, BAD = "127.0.16.3", "127.0.16.4"
DESCRIBE = "workflow.v1.WorkflowAgent/DescribeAgent"
PROCESS = "workflow.v1.WorkflowAgent/ProcessConversation"
# W3C Trace Context: version-traceid-parentid-flags, lowercase hex.
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class Recorded:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = Telemetry(self.tracer_provider, self.meter_provider)

    def spans(self, name: str | None = None, kind: SpanKind | None = None) -> list[ReadableSpan]:
        return [
            s
            for s in self.exporter.get_finished_spans()
            if (name is None or s.name == name) and (kind is None or s.kind is kind)
        ]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found


@pytest.fixture
def otel() -> Iterator[Recorded]:
    recorded = Recorded()
    yield recorded
    recorded.tracer_provider.shutdown()
    recorded.meter_provider.shutdown()


async def _server(host: str, servicer: Any, otel: Recorded, *extra: ServiceSpec) -> Server:
    settings = ServerSettings(host=host, port=0, drain_seconds=0, grace_seconds=0.5)
    server = Server(
        [agent_service(servicer), *extra],
        settings=settings,
        registry=CollectorRegistry(),
        telemetry=otel.telemetry,
    )
    await server.start()
    return server


@pytest.fixture
async def two_servers(otel: Recorded) -> AsyncIterator[tuple[Server, Server, FailingAgent]]:
    failing = FailingAgent("bad", code=grpc.StatusCode.UNAVAILABLE)
    good = await _server(GOOD, WorkflowAgentServicer(AgentSettings(instance_id="good")), otel)
    bad = await _server(BAD, failing, otel)
    try:
        yield good, bad, failing
    finally:
        await good.shutdown()
        await bad.shutdown()


def _channel(servers: list[Server], otel: Recorded | None, **kw: Any) -> BalancedChannel:
    endpoints = [
        Endpoint(s.address.rsplit(":", 1)[0], s.port, {"availability_zone": f"zone-{i}"})
        for i, s in enumerate(servers)
    ]
    return BalancedChannel(
        ManualResolver(endpoints),
        target="static:///agents",
        registry=CollectorRegistry(),
        detect_ecs_zone=False,
        telemetry=False if otel is None else otel.telemetry,
        **kw,
    )


async def test_a_retried_call_is_one_client_span_with_an_event_per_attempt(
    otel: Recorded, two_servers: tuple[Server, Server, FailingAgent]
) -> None:
    good, bad, failing = two_servers
    async with _channel([good, bad], otel, policy="round_robin") as ch:
        assert await wait_until(lambda: ch.ready_count == 2, 10)
        stub = pb2_grpc.WorkflowAgentStub(ch)
        parent_tracer = otel.tracer_provider.get_tracer("test")
        with parent_tracer.start_as_current_span("request") as parent:
            for _ in range(4):  # round robin: some call starts on the failing agent
                info = await stub.DescribeAgent(pb2.DescribeAgentRequest(), timeout=5)
                assert info.instance_id == "good"
                if failing.attempts:
                    break
    assert failing.attempts >= 1
    clients = otel.spans(DESCRIBE, SpanKind.CLIENT)
    assert clients, otel.spans()
    for span in clients:
        assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
        assert span.context.trace_id == parent.get_span_context().trace_id
        assert span.attributes is not None
        assert span.attributes["rpc.system"] == "grpc"
        assert span.attributes["rpc.service"] == "workflow.v1.WorkflowAgent"
        assert span.attributes["rpc.method"] == "DescribeAgent"
        assert span.attributes["rpc.grpc.status_code"] == 0
        assert span.attributes["server.address"] == GOOD
        assert span.attributes["server.port"] == good.port
        assert span.status.status_code is StatusCode.UNSET
    [retried] = [s for s in clients if len(s.events) == 2]
    first, second = retried.events
    assert first.name == second.name == "attempt"
    assert dict(first.attributes or {}) == {
        "ecsgrpc.attempt": 1,
        "server.address": BAD,
        "server.port": bad.port,
        "ecsgrpc.endpoint.zone": "zone-1",
    }
    assert dict(second.attributes or {}) == {
        "ecsgrpc.attempt": 2,
        "server.address": GOOD,
        "server.port": good.port,
        "ecsgrpc.endpoint.zone": "zone-0",
        "ecsgrpc.retry.reason": "UNAVAILABLE",
    }
    # Both attempts reached a server, each a SERVER span child of the one client span.
    servers = [s for s in otel.spans(DESCRIBE, SpanKind.SERVER) if s.parent is not None]
    children = [s for s in servers if s.parent and s.parent.span_id == retried.context.span_id]
    assert len(children) == 2
    by_host = {s.attributes["server.address"]: s for s in children if s.attributes}
    assert by_host[BAD].attributes is not None and by_host[GOOD].attributes is not None
    assert by_host[BAD].attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]
    assert by_host[BAD].status.status_code is StatusCode.ERROR  # UNAVAILABLE: a server error
    assert by_host[GOOD].attributes["rpc.grpc.status_code"] == 0
    assert by_host[GOOD].attributes["server.port"] == good.port
    assert all(s.context.trace_id == retried.context.trace_id for s in children)
    assert all(s.attributes and s.attributes["rpc.system"] == "grpc" for s in children)


async def test_a66_metrics_count_attempts_and_calls(
    otel: Recorded, two_servers: tuple[Server, Server, FailingAgent]
) -> None:
    good, bad, failing = two_servers
    async with _channel([good, bad], otel, policy="round_robin") as ch:
        assert await wait_until(lambda: ch.ready_count == 2, 10)
        stub = pb2_grpc.WorkflowAgentStub(ch)
        for _ in range(4):
            await stub.DescribeAgent(pb2.DescribeAgentRequest(), timeout=5)
    calls = 4
    attempts = calls + failing.attempts
    target = {"grpc.method": DESCRIBE, "grpc.target": "static:///agents"}
    [started] = otel.points("grpc.client.attempt.started")
    assert dict(started.attributes) == target and started.value == attempts
    by_status = {
        p.attributes["grpc.status"]: p for p in otel.points("grpc.client.attempt.duration")
    }
    assert by_status["OK"].count == calls
    assert by_status["UNAVAILABLE"].count == failing.attempts
    assert dict(by_status["OK"].attributes) == {**target, "grpc.status": "OK"}
    [call] = otel.points("grpc.client.call.duration")
    assert dict(call.attributes) == {**target, "grpc.status": "OK"} and call.count == calls
    # gRFC A66's latency buckets, in seconds.
    assert call.explicit_bounds[:4] == (0.0, 0.00001, 0.00005, 0.0001)
    assert call.explicit_bounds[-1] == 100.0
    [server_started] = otel.points("grpc.server.call.started")
    assert dict(server_started.attributes) == {"grpc.method": DESCRIBE}
    assert server_started.value == attempts
    server = {
        p.attributes["grpc.status"]: p.count for p in otel.points("grpc.server.call.duration")
    }
    assert server == {"OK": calls, "UNAVAILABLE": failing.attempts}


async def test_stream_span_covers_the_stream_and_invalid_argument_is_a_client_error_only(
    otel: Recorded,
) -> None:
    settings = AgentSettings(instance_id="good", event_delay_seconds=0.05)
    server = await _server(GOOD, WorkflowAgentServicer(settings), otel)
    try:
        async with _channel([server], otel) as ch:
            stub = pb2_grpc.WorkflowAgentStub(ch)
            request = pb2.ConversationRequest(
                conversation_id="c", messages=[pb2.Message(role="user", content="a b c d")]
            )
            events = [e async for e in stub.ProcessConversation(request, timeout=5)]
            assert len(events) == 6
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                async for _ in stub.ProcessConversation(pb2.ConversationRequest(), timeout=5):
                    pass
            assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await server.shutdown()
    ok, invalid = otel.spans(PROCESS, SpanKind.CLIENT)
    # The stream's span lasts the whole stream: 5 pauses of 50 ms.
    assert ok.end_time is not None and ok.start_time is not None
    assert ok.end_time - ok.start_time >= 0.25e9
    assert ok.status.status_code is StatusCode.UNSET
    assert invalid.attributes and invalid.attributes["rpc.grpc.status_code"] == 3
    assert invalid.status.status_code is StatusCode.ERROR
    server_spans = otel.spans(PROCESS, SpanKind.SERVER)
    by_parent = {s.parent.span_id: s for s in server_spans if s.parent}
    assert by_parent[invalid.context.span_id].status.status_code is StatusCode.UNSET
    assert by_parent[ok.context.span_id].end_time is not None


def _metadata_echo(seen: list[tuple[tuple[str, str], ...]]) -> ServiceSpec:
    async def get(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen.append(tuple(context.invocation_metadata() or ()))
        return b"ok"

    handler = grpc.method_handlers_generic_handler(
        "test.Meta", {"Get": grpc.unary_unary_rpc_method_handler(get)}
    )
    return ServiceSpec("test.Meta", lambda s: s.add_generic_rpc_handlers((handler,)))


async def test_w3c_traceparent_is_sent_in_metadata_and_nothing_when_off(otel: Recorded) -> None:
    seen: list[tuple[tuple[str, str], ...]] = []
    agent = WorkflowAgentServicer(AgentSettings(instance_id="good"))
    server = await _server(GOOD, agent, otel, _metadata_echo(seen))
    try:
        tracer = otel.tracer_provider.get_tracer("test")
        for recorded in (otel, None):
            async with _channel([server], recorded) as ch:
                get = ch.unary_unary("/test.Meta/Get")
                with tracer.start_as_current_span("caller"):
                    assert await get(b"", timeout=5, metadata=(("x-caller", "1"),)) == b"ok"
    finally:
        await server.shutdown()
    traced, plain = (dict(m) for m in seen)
    assert TRACEPARENT.match(traced["traceparent"]), traced
    [client] = otel.spans("test.Meta/Get", SpanKind.CLIENT)
    trace_id, span_id, flags = traced["traceparent"].split("-")[1:]
    assert int(flags, 16) & 1  # sampled
    assert int(trace_id, 16) == client.context.trace_id
    assert int(span_id, 16) == client.context.span_id
    assert traced["x-caller"] == plain["x-caller"] == "1"  # the caller's metadata kept
    assert "traceparent" not in plain  # telemetry=False: not even the caller's context


def test_library_imports_no_opentelemetry_until_asked() -> None:
    import subprocess
    import sys

    code = (
        "import sys, ecsgrpc, ecsgrpc.balancing.channel, ecsgrpc.server;"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_nothing_is_recorded_or_sent_until_an_sdk_provider_is_set() -> None:
    """Only the API installed (no provider set): calls carry no trace context and
    cost no span; once the application sets a provider, calls are traced."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import asyncio, grpc
        from prometheus_client import CollectorRegistry
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from ecsgrpc.balancing.channel import connect
        from ecsgrpc.config import ServerSettings
        from ecsgrpc.server import Server, ServiceSpec

        seen = []

        async def get(request, context):
            seen.append(dict(context.invocation_metadata()))
            return b"ok"

        handler = grpc.method_handlers_generic_handler(
            "test.Meta", {"Get": grpc.unary_unary_rpc_method_handler(get)})
        spec = ServiceSpec("test.Meta", lambda s: s.add_generic_rpc_handlers((handler,)))

        async def main():
            server = Server([spec], settings=ServerSettings(
                host="127.0.16.11", port=0, drain_seconds=0, grace_seconds=0.5),
                registry=CollectorRegistry())
            await server.start()
            exporter = InMemorySpanExporter()
            async with connect(f"static:///{server.address}", registry=CollectorRegistry()) as ch:
                get = ch.unary_unary("/test.Meta/Get")
                await get(b"", timeout=5)
                provider = TracerProvider()
                provider.add_span_processor(SimpleSpanProcessor(exporter))
                trace.set_tracer_provider(provider)
                await get(b"", timeout=5)
            await server.shutdown()
            print(["traceparent" in m for m in seen])
            print(sorted((s.name, s.kind.name) for s in exporter.get_finished_spans()))

        asyncio.run(main())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=50, check=True
    ).stdout.splitlines()
    assert out == [
        "[False, True]",
        "[('test.Meta/Get', 'CLIENT'), ('test.Meta/Get', 'SERVER')]",
    ], out
