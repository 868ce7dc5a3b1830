"""`ecsgrpc demo` end to end: embedded Cloud Map, 3 agent tasks, the gateway, deploy, crash."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(180)
def test_demo_runs_the_whole_script_and_loses_no_request(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["TMPDIR"] = str(tmp_path)  # where the demo's run directory goes (and must leave)
    result = subprocess.run(
        [sys.executable, "-m", "ecsgrpc", "demo", "--json", "--speed", "0.25", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=170,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["errors"] == 0
    assert summary["requests"] > 100
    # 3 first tasks, 3 from the rolling deploy, 1 replacing the crashed one.
    assert len(summary["served_by"]) >= 6
    assert sum(summary["served_by"].values()) == summary["requests"]
    assert set(summary) >= {"requests", "errors", "served_by", "traffic_left_seconds"}
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("ecsgrpc-demo-*"))
    if importlib.util.find_spec("opentelemetry.sdk") is not None:
        _check_trace(summary["trace"])


def _check_trace(trace: dict[str, object]) -> None:
    """One conversation: gateway HTTP span > channel call span > agent span."""
    spans = trace["spans"]
    assert isinstance(spans, list)
    http, call, agent = spans[0], spans[1], spans[-1]
    assert (http["service"], http["name"], http["kind"]) == (
        "api-gateway",
        "POST /v1/conversations",
        "SERVER",
    )
    name = "workflow.v1.WorkflowAgent/ProcessConversation"
    assert (call["service"], call["name"], call["kind"]) == ("api-gateway", name, "CLIENT")
    assert (agent["service"], agent["name"], agent["kind"]) == ("workflow-agent", name, "SERVER")
    assert call["parent_span_id"] == http["span_id"]
    assert agent["parent_span_id"] in {s["span_id"] for s in spans if s["kind"] == "CLIENT"}
    assert [e["name"] for e in call["events"]][:1] == ["attempt"]
    assert call["events"][-1]["attributes"]["server.address"].startswith("127.0.0.")
