"""`ecsgrpc demo` end to end: embedded Cloud Map, 3 agent tasks, the gateway, deploy, crash."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.timeout(180)
def test_demo_runs_the_whole_script_and_loses_no_request() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ecsgrpc", "demo", "--json", "--speed", "0.25", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=170,
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
