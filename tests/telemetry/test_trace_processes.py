"""One conversation, one trace, across real processes: gateway -> balanced channel -> agent.

The gateway and two agents run as ``ecsgrpc`` processes that export with
OTLP/gRPC, switched on only by the standard ``OTEL_*`` variables, to a receiver
the test runs on loopback. They are stopped with SIGTERM so their SDKs flush.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ecsgrpc_apps.telemetry.collector import OtlpReceiver, SpanRecord
from tests.support.agents import AgentProcess, wait_until

pytestmark = pytest.mark.timeout(90)

RECEIVER, AGENTS, GATEWAY = "127.0.16.1", ("127.0.16.5", "127.0.16.6"), "127.0.16.7"
PROCESS = "workflow.v1.WorkflowAgent/ProcessConversation"
_SERVING = re.compile(r"gateway serving on http://(\S+)")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], str, Path]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, Path]:
        log_path = tmp_path / "gateway.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ecsgrpc", "gateway", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
            )
        started.append(proc)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            match = _SERVING.search(log_path.read_text(errors="replace"))
            if match:
                return proc, f"http://{match.group(1)}", log_path
            time.sleep(0.05)
        raise AssertionError(log_path.read_text(errors="replace"))

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _one(spans: list[SpanRecord], **match: str) -> SpanRecord:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, "\n".join(map(repr, spans))
    return found[0]


async def test_conversation_is_one_trace_from_http_to_agent(
    agents: Callable[..., AgentProcess],
    gateway: Callable[..., tuple[subprocess.Popen[bytes], str, Path]],
) -> None:
    async with OtlpReceiver(RECEIVER) as rx:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
        }
        procs = [
            agents(host, env=env, args=("--drain-seconds", "0", "--grace-seconds", "1"))
            for host in AGENTS
        ]
        target = "static:///" + ",".join(p.address for p in procs)
        args = ("--host", GATEWAY, "--port", "0", "--target", target)
        drain = ("--drain-seconds", "0", "--grace-seconds", "1")
        proc, url, log_path = gateway(*args, *drain, env=env)
        # A caller's own trace context (W3C traceparent header) is continued.
        trace_id, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:

            async def ready() -> bool:
                return (await http.get("/readyz")).json().get("ready_endpoints") == 2

            deadline = time.monotonic() + 15
            while not await ready():
                assert time.monotonic() < deadline, log_path.read_text()
                await asyncio.sleep(0.1)
            reply = await http.post(
                "/v1/conversations",
                json={"messages": [{"role": "user", "content": "trace me please"}]},
                headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
            )
            assert reply.status_code == 200, reply.text
            served_by = reply.json()["served_by"]
            # SSE: the stream is answered after the handler returned; still one trace.
            sse_trace = "0af7651916cd43dd8448eb211c80319c"
            async with http.stream(
                "POST",
                "/v1/conversations",
                json={"messages": [{"role": "user", "content": "stream me"}]},
                headers={
                    "accept": "text/event-stream",
                    "traceparent": f"00-{sse_trace}-b7ad6b7169203331-01",
                },
            ) as stream:
                assert stream.status_code == 200
                body = (await stream.aread()).decode()
            assert "event: done" in body
            prometheus = (await http.get("/metrics")).text
        # Prometheus metrics stay beside the OpenTelemetry ones.
        assert "ecsgrpc_client_call_duration_seconds" in prometheus
        for p in [proc, *(a.proc for a in procs)]:
            p.send_signal(signal.SIGTERM)
        codes = [await asyncio.to_thread(p.wait, 20) for p in [proc, *(a.proc for a in procs)]]
        assert codes == [0, 0, 0], log_path.read_text()
        assert await wait_until(lambda: len(rx.trace(trace_id)) >= 3, 5), rx.spans
        assert await wait_until(lambda: len(rx.trace(sse_trace)) >= 3, 5), rx.spans

    spans = rx.trace(trace_id)
    http_span = _one(spans, name="POST /v1/conversations")
    assert http_span.service == "api-gateway" and http_span.kind == "SERVER"
    assert http_span.parent_span_id == caller_span
    attrs = http_span.attributes
    assert attrs["http.request.method"] == "POST"
    assert attrs["http.route"] == "/v1/conversations"
    assert attrs["url.path"] == "/v1/conversations"
    assert attrs["url.scheme"] == "http"
    assert attrs["http.response.status_code"] == 200
    assert attrs["server.address"] == GATEWAY
    assert http_span.status == "UNSET"

    client = _one(spans, name=PROCESS, kind="CLIENT")
    assert client.service == "api-gateway"
    assert client.parent_span_id == http_span.span_id, "\n".join(map(repr, spans))
    assert client.attributes["rpc.system"] == "grpc"
    assert client.attributes["rpc.service"] == "workflow.v1.WorkflowAgent"
    assert client.attributes["rpc.method"] == "ProcessConversation"
    assert client.attributes["rpc.grpc.status_code"] == 0
    [(event, event_attrs)] = client.events
    assert event == "attempt" and event_attrs["ecsgrpc.attempt"] == 1
    served = next(p for p in procs if p.instance_id == served_by)
    assert (event_attrs["server.address"], event_attrs["server.port"]) == (served.host, served.port)
    assert client.attributes["server.address"] == served.host

    server = _one(spans, name=PROCESS, kind="SERVER")
    assert server.service == "workflow-agent"
    assert server.parent_span_id == client.span_id
    assert server.attributes["rpc.system"] == "grpc"
    assert server.attributes["rpc.grpc.status_code"] == 0
    assert server.attributes["server.address"] == served.host
    # Nesting in time too: the HTTP span holds the call, the call holds the agent's work.
    assert http_span.start_ns <= client.start_ns <= server.start_ns
    assert server.end_ns <= client.end_ns <= http_span.end_ns

    # gRFC A66 metric names, exported by the same processes.
    assert {
        "grpc.client.attempt.started",
        "grpc.client.attempt.duration",
        "grpc.client.call.duration",
    } <= rx.metric_names["api-gateway"]
    assert {"grpc.server.call.started", "grpc.server.call.duration"} <= rx.metric_names[
        "workflow-agent"
    ]

    sse = rx.trace(sse_trace)
    sse_http = _one(sse, name="POST /v1/conversations")
    sse_client = _one(sse, name=PROCESS, kind="CLIENT")
    sse_server = _one(sse, name=PROCESS, kind="SERVER")
    assert sse_client.parent_span_id == sse_http.span_id
    assert sse_server.parent_span_id == sse_client.span_id
    assert sse_client.end_ns <= sse_http.end_ns  # the HTTP span lasts the whole stream
