"""The demo's printed summary: no number where there was nothing to measure, the trace
as an indented tree, the curl command on one line."""

from __future__ import annotations

from rich.console import Console

from ecsgrpc_apps.cli.demo import _print_urls
from ecsgrpc_apps.demo.run import DemoSummary
from ecsgrpc_apps.demo.view import render_summary

TRACE = {
    "trace_id": "ab" * 16,
    "spans": [
        {"service": "api-gateway", "name": "POST /v1/conversations", "kind": "SERVER",
         "span_id": "1" * 16, "parent_span_id": None, "duration_ms": 9.5, "status": "UNSET",
         "attributes": {}, "events": []},
        {"service": "api-gateway", "name": "workflow.v1.WorkflowAgent/ProcessConversation",
         "kind": "CLIENT", "span_id": "2" * 16, "parent_span_id": "1" * 16, "duration_ms": 8.0,
         "status": "UNSET", "attributes": {}, "events": [
             {"name": "attempt", "attributes": {"ecsgrpc.attempt": 1, "server.address": "127.0.0.2", "server.port": 50051}},
             {"name": "attempt", "attributes": {"ecsgrpc.attempt": 2, "server.address": "127.0.0.3", "server.port": 50051, "ecsgrpc.retry.reason": "UNAVAILABLE"}},
         ]},
        {"service": "workflow-agent", "name": "workflow.v1.WorkflowAgent/ProcessConversation",
         "kind": "SERVER", "span_id": "3" * 16, "parent_span_id": "2" * 16, "duration_ms": 7.0,
         "status": "UNSET", "attributes": {}, "events": []},
    ],
}  # fmt: skip


def _text(renderable: object, width: int = 160) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))
    console.print(renderable)
    return console.export_text()


def test_summary_says_none_for_no_traffic_after_a_stop_and_shows_the_trace() -> None:
    summary = DemoSummary(
        requests=10,
        errors=0,
        served_by={"aaaaaaaa": 10},
        error_samples=[],
        traffic_left_seconds={"aaaaaaaa": None, "bbbbbbbb": 0.25},
        restarted=0,
        duration_seconds=50.0,
        gateway_url="http://127.0.0.1:8080",
        trace=TRACE,
    )
    text = _text(render_summary(summary))
    lines = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in text.splitlines()
        if line.count("│") == 3
    }
    assert lines["traffic to aaaaaaaa after its stop"] == "none"
    assert lines["traffic to bbbbbbbb after its stop"] == "last new request 0.250 s later"
    assert "api-gateway: POST /v1/conversations (9.5 ms)" in text
    assert (
        "  api-gateway: workflow.v1.WorkflowAgent/ProcessConversation (8.0 ms); attempt 1 -> "
        "127.0.0.2:50051; attempt 2 -> 127.0.0.3:50051 (retry after UNAVAILABLE)"
    ) in text
    assert "    workflow-agent: workflow.v1.WorkflowAgent/ProcessConversation (7.0 ms)" in text
    assert summary.to_json()["traffic_left_seconds"] == {"aaaaaaaa": None, "bbbbbbbb": 0.25}


def test_the_curl_command_is_one_line_on_a_narrow_terminal() -> None:
    console = Console(width=60, record=True, file=open("/dev/null", "w"))
    _print_urls(console, "http://127.0.0.1:8080")
    [curl] = [line for line in console.export_text().splitlines() if "curl" in line]
    assert curl.endswith("http://127.0.0.1:8080/v1/conversations")
    assert curl.startswith("curl -N -H 'accept: text/event-stream'")
