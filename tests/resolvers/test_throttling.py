"""Throttling answered with backoff: a real HTTP server speaking Cloud Map's JSON protocol.

The server on 127.0.0.5 answers ``DiscoverInstances`` with throttling errors a
few times, then with instances, and records when each request came, so the
test counts the calls and measures the gaps between them.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry

from ecsgrpc.resolvers import Backoff, build_resolver
from tests.resolvers.helpers import metric, watching

pytestmark = pytest.mark.timeout(30)

INSTANCES = {
    "Instances": [
        {
            "InstanceId": "task-1",
            "NamespaceName": "workflow.local",
            "ServiceName": "workflow-agent",
            "HealthStatus": "HEALTHY",
            "Attributes": {"AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "50051"},
        }
    ],
    "InstancesRevision": 1,
}


class FakeCloudMap(ThreadingHTTPServer):
    """Answers each request with the next scripted (status, body); records request times."""

    def __init__(self, script: list[tuple[int, dict[str, object]]]) -> None:
        super().__init__(("127.0.0.5", 0), _Handler)
        self.script = script
        self.calls: list[tuple[float, str, str]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.5:{self.server_address[1]}"

    def next_answer(self, target: str, host: str) -> tuple[int, dict[str, object]]:
        with self.lock:
            self.calls.append((time.monotonic(), target, host))
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]


class _Handler(BaseHTTPRequestHandler):
    server: FakeCloudMap

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, body = self.server.next_answer(
            self.headers.get("X-Amz-Target", ""), self.headers.get("Host", "")
        )
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_cloudmap(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCloudMap]:
    throttled = {"__type": "ThrottlingException", "message": "Rate exceeded"}
    limit = {"__type": "RequestLimitExceeded", "Message": "too many requests"}
    server = FakeCloudMap([(400, limit), (400, throttled), (400, limit), (200, INSTANCES)])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for name, value in {
        "AWS_ENDPOINT_URL_SERVICEDISCOVERY": server.url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/nonexistent/config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


async def test_throttling_backs_off_with_jitter_then_recovers(fake_cloudmap: FakeCloudMap) -> None:
    registry = CollectorRegistry()
    backoff = Backoff(initial=0.2, maximum=5, multiplier=2, jitter=0.2)
    resolver = build_resolver(
        "cloudmap://workflow.local/workflow-agent?poll=60", registry=registry, backoff=backoff
    )
    async with watching(resolver) as watcher:
        await watcher.wait_for(lambda s: len(s) == 1, 10)
    # Exactly 4 requests: botocore's own retries are off, our loop does the backing off.
    assert len(fake_cloudmap.calls) == 4
    times = [t for t, _, _ in fake_cloudmap.calls]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, base in zip(gaps, [0.2, 0.4, 0.8]):
        assert base * 0.8 - 0.01 <= gap <= base + 0.3, gaps
    assert (
        metric(registry, "ecsgrpc_resolutions_total", resolver="cloudmap", outcome="throttled") == 3
    )
    assert (
        metric(registry, "ecsgrpc_resolutions_total", resolver="cloudmap", outcome="success") == 1
    )
    # The endpoint override reached our server as-is: no "data-" host prefix.
    assert {target for _, target, _ in fake_cloudmap.calls} == {
        "Route53AutoNaming_v20170314.DiscoverInstances"
    }
    assert all(host.startswith("127.0.0.5:") for _, _, host in fake_cloudmap.calls)
    assert [ep.address for ep in watcher.snapshots[0]] == ["10.0.0.1:50051"]
