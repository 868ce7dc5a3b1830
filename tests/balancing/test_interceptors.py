"""grpc.aio client interceptors on connect(): once per call (not per attempt).

Shown with OpenTelemetry's own gRPC aio client instrumentation
(``opentelemetry.instrumentation.grpc.aio_client_interceptors``, the
interceptors ``GrpcAioInstrumentorClient`` installs) and with a plain
interceptor written against grpc.aio's published classes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from ecsgrpc.balancing.channel import BalancedChannel, connect
from ecsgrpc.errors import ConfigError
from tests.support import call_service as svc

pytestmark = pytest.mark.timeout(60)

HOSTS = ("127.0.11.7", "127.0.11.8")


@asynccontextmanager
async def channel_over(state: svc.State, interceptors: list[Any]) -> AsyncIterator[BalancedChannel]:
    servers = [await svc.start(host, host, state) for host in HOSTS]
    target = "static:///" + ",".join(f"{h}:{p}" for h, (_, p) in zip(HOSTS, servers, strict=True))
    try:
        async with connect(
            target, registry=CollectorRegistry(), interceptors=interceptors
        ) as channel:
            await channel.channel_ready(timeout=10, min_ready=len(HOSTS))
            yield channel
    finally:
        for server, _ in servers:
            await server.stop(None)


async def test_opentelemetry_aio_client_instrumentation_makes_one_span_per_call() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    state = svc.State(fail_first=1)  # the first call takes two attempts
    async with channel_over(state, aio_client_interceptors(tracer_provider=provider)) as channel:
        assert await channel.unary_unary(svc.UNARY)(b"ok", timeout=5) == b"ok"
        assert sum(state.executions.values()) == 2
        with pytest.raises(grpc.aio.AioRpcError):
            await channel.unary_unary(svc.UNARY)(b"not_found", timeout=5)
        stream = channel.unary_stream(svc.SERVER_STREAM)(b"n:2", timeout=5)
        assert [m async for m in stream] == [b"0", b"1"]
        bidi = channel.stream_stream(svc.BIDI)(iter([b"a"]), timeout=5)
        assert [m async for m in bidi] == [b"a"]
        client = channel.stream_unary(svc.CLIENT_STREAM)(iter([b"x", b"y"]), timeout=5)
        assert await client == b"x,y"

    spans = exporter.get_finished_spans()
    names = [s.name for s in spans]
    assert sorted(names) == sorted(
        [svc.UNARY, svc.UNARY, svc.SERVER_STREAM, svc.BIDI, svc.CLIENT_STREAM]
    ), names
    assert all(s.kind is SpanKind.CLIENT for s in spans)
    ok, failed = [s for s in spans if s.name == svc.UNARY]
    if ok.status.status_code is StatusCode.ERROR:
        ok, failed = failed, ok
    assert ok.status.status_code is not StatusCode.ERROR
    assert ok.attributes is not None
    assert ok.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]


class _Counting(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    """Counts calls and adds a header; implements two kinds in one object."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _details(self, details: Any) -> Any:
        self.calls.append(details.method.decode())
        metadata = grpc.aio.Metadata(*(details.metadata or ()), ("x-intercepted", "1"))
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


async def test_a_plain_interceptor_runs_once_per_call_around_every_attempt() -> None:
    counting = _Counting()
    state = svc.State(fail_first=1)
    async with channel_over(state, [counting]) as channel:
        call = channel.unary_unary(svc.UNARY)(b"ok", timeout=5)
        assert await call == b"ok"
        assert await call.code() is grpc.StatusCode.OK
        state.fail_first = 1
        stream = channel.unary_stream(svc.SERVER_STREAM)(b"n:1", timeout=5)
        assert [m async for m in stream] == [b"0"]
    assert counting.calls == [svc.UNARY, svc.SERVER_STREAM]
    assert sum(state.executions.values()) == 4  # two attempts each, one interception each


def test_an_object_that_is_not_an_interceptor_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"not a grpc\.aio client interceptor"):
        connect("static:///127.0.11.7:1", interceptors=[object()])
