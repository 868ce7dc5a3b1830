"""/healthz, /readyz, /metrics, /debug/endpoints, /openapi.json and the drain's readiness."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

import httpx
import pytest

from ecsgrpc.balancing.status import EndpointStatus
from tests.gateway.support import SSE, conversation, endpoint, read_frames, running_gateway
from tests.support.agents import AgentProcess, wait_until

pytestmark = pytest.mark.timeout(60)


async def _status(http: httpx.AsyncClient, path: str) -> int:
    return (await http.get(path)).status_code


async def test_readyz_follows_the_agents_and_healthz_stays_up(
    agents: Callable[..., AgentProcess],
) -> None:
    first = agents("127.0.0.2")
    async with running_gateway([endpoint(first)]) as gw, gw.http() as http:
        assert await wait_until(lambda: _ready(http, 200), 10)
        body = (await http.get("/readyz")).json()
        assert body == {"status": "ready", "ready_endpoints": 1, "state": "serving"}

        first.kill()  # every agent gone
        assert await wait_until(lambda: _ready(http, 503), 10)
        body = (await http.get("/readyz")).json()
        assert body == {"status": "not_ready", "ready_endpoints": 0, "state": "serving"}
        assert (await http.get("/healthz")).json() == {"status": "ok"}

        second = agents("127.0.0.3")  # one returns, announced by discovery
        gw.resolver.update([endpoint(second)])
        assert await wait_until(lambda: _ready(http, 200), 10)
        reply = await http.post("/v1/conversations", json=conversation("back again"))
        assert reply.json()["served_by"] == second.instance_id


async def _ready(http: httpx.AsyncClient, status: int) -> bool:
    return await _status(http, "/readyz") == status


async def test_readyz_is_503_without_endpoints_and_while_draining(
    agents: Callable[..., AgentProcess],
) -> None:
    async with running_gateway([]) as gw, gw.http() as http:
        response = await http.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "not_ready"
    agent = agents("127.0.0.2", args=("--event-delay", "0.2"))
    async with running_gateway([endpoint(agent)], drain_seconds=1.0) as gw, gw.http() as http:
        assert await wait_until(lambda: _ready(http, 200), 10)
        async with http.stream(
            "POST",
            "/v1/conversations",
            json=conversation("one two three four five six"),
            headers=SSE,
        ) as stream:
            gw.server.request_shutdown()
            await asyncio.sleep(0)
            draining = await http.get("/readyz")
            assert draining.status_code == 503
            assert draining.json() == {
                "status": "draining",
                "ready_endpoints": 1,
                "state": "draining",
            }
            # New requests are still served during the drain.
            during = await http.post("/v1/conversations", json=conversation("still served"))
            assert during.json()["reply"] == "still served"
            frames = await read_frames(stream)
        # The stream that was in flight finished completely.
        assert frames[-1].event == "done"
        assert frames[-1].data["reply"] == "one two three four five six"


async def test_metrics_expose_client_and_gateway_families(
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents("127.0.0.2")
    async with running_gateway([endpoint(agent)]) as gw, gw.http() as http:
        for _ in range(3):
            assert (
                await http.post("/v1/conversations", json=conversation("a b"))
            ).status_code == 200
        await http.post("/v1/conversations", json={"messages": []})
        await http.get("/no/such/path/123")
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for family in (
        "ecsgrpc_client_calls_in_flight",
        "ecsgrpc_client_call_duration_seconds_bucket",
        "ecsgrpc_endpoints",
        "ecsgrpc_gateway_requests_total",
        "ecsgrpc_gateway_request_duration_seconds_bucket",
        "ecsgrpc_gateway_requests_in_flight",
        "ecsgrpc_gateway_draining",
    ):
        assert f"\n{family}" in text, family
    assert (
        'ecsgrpc_gateway_requests_total{method="POST",route="/v1/conversations",status="200"} 3.0'
        in text
    )
    assert (
        'ecsgrpc_gateway_requests_total{method="POST",route="/v1/conversations",status="422"} 1.0'
        in text
    )
    # A random path is labelled "other", never by itself.
    assert 'route="other",status="404"' in text
    assert "/no/such/path" not in text
    assert (
        'ecsgrpc_client_call_duration_seconds_count{code="OK",'
        'method="/workflow.v1.WorkflowAgent/ProcessConversation"} 3.0' in text
    )


async def test_the_event_loop_lag_histogram_shows_a_blocked_loop() -> None:
    """Every 20 ms the gateway times its loop; a loop blocked for 300 ms is one sample past 0.25 s."""
    name = "ecsgrpc_gateway_event_loop_lag_seconds"
    async with running_gateway() as gw, gw.http() as http:

        def sample(suffix: str, **labels: str) -> float:
            return gw.registry.get_sample_value(name + suffix, labels) or 0.0

        def between() -> float:  # samples in (0.25 s, 1 s]
            return sample("_bucket", le="1.0") - sample("_bucket", le="0.25")

        assert await wait_until(lambda: sample("_count") >= 10, 5)  # every 20 ms
        before = between()
        time.sleep(0.3)  # blocks the loop the gateway runs on (this test's)
        assert await wait_until(lambda: between() >= before + 1, 5)
        assert f"\n{name}_bucket" in (await http.get("/metrics")).text


async def test_debug_endpoints_lists_the_channels_endpoints(
    agents: Callable[..., AgentProcess],
) -> None:
    procs = [agents("127.0.0.2"), agents("127.0.0.3")]
    async with running_gateway([endpoint(p) for p in procs]) as gw, gw.http() as http:
        assert await wait_until(lambda: gw.channel.ready_count == 2, 10)
        body = (await http.get("/debug/endpoints")).json()
    assert sorted(e["address"] for e in body) == sorted(p.address for p in procs)
    for entry in body:
        # Everything the channel reports about an endpoint, nothing dropped.
        assert set(entry) == {f.name for f in dataclasses.fields(EndpointStatus)}
        assert entry["state"] == "ready"
        assert entry["health"] == "serving"
        assert entry["pickable"] is True
        assert entry["ejected"] is False
        assert entry["stalled"] is False
        assert entry["in_flight"] == 0
    assert {e["instance_id"] for e in body} == {p.instance_id for p in procs}


async def test_openapi_documents_every_response() -> None:
    async with running_gateway([]) as gw, gw.http() as http:
        doc = (await http.get("/openapi.json")).json()
        docs_page = await http.get("/docs")
    assert docs_page.status_code == 404  # off by default: its viewer needs a CDN
    paths = doc["paths"]
    assert set(paths) == {
        "/v1/conversations",
        "/healthz",
        "/readyz",
        "/metrics",
        "/debug/endpoints",
    }
    post = paths["/v1/conversations"]["post"]
    assert set(post["responses"]) == {"200", "400", "413", "415", "422", "429", "502", "503", "504"}
    for status, response in post["responses"].items():
        assert response["description"], status
        if status != "200":
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, status
    ok = post["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/ConversationReply"}
    assert "text/event-stream" in ok
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ConversationIn"
    }
    assert set(paths["/readyz"]["get"]["responses"]) == {"200", "503"}
    schemas = doc["components"]["schemas"]
    assert {"ErrorBody", "ErrorDetail", "Problem", "ConversationIn", "EndpointOut"} <= set(schemas)
    assert "HTTPValidationError" not in schemas  # 422 uses ErrorBody like every error
