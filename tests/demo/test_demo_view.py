"""What the demo's live view shows while it runs (the real script, in a child process).

The child runs ``run_demo`` at a quarter of its speed with a recorder as its
``on_update``: every frame is rendered to text with the real view and kept
with the phase and the request count at that moment.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from rich.console import Console
    from ecsgrpc_apps.demo.run import DemoOptions, run_demo
    from ecsgrpc_apps.demo.view import render

    frames = []
    tasks = {}

    def record(state):
        console = Console(record=True, width=200, file=open("/dev/null", "w"))
        console.print(render(state))
        frames.append({
            "t": time.monotonic(),
            "phase": state.phase,
            "requests": len(state.traffic.outcomes) if state.traffic else 0,
            "text": console.export_text(),
        })
        if state.runner is not None:
            for task in state.runner.all_tasks:
                tasks[task.task_id] = task.address

    options = DemoOptions(port=0, warmup_seconds=2, settle_seconds=1.5, after_kill_seconds=2)
    summary = asyncio.run(run_demo(options, on_update=record))
    print(json.dumps({"frames": frames, "tasks": tasks, "summary": summary.to_json()}))
    """
)


@pytest.mark.timeout(180)
def test_live_view_counts_through_the_deploy_shows_draining_and_never_a_dead_task_draining(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["TMPDIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=170, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    frames, summary = data["frames"], data["summary"]
    assert summary["errors"] == 0, summary

    # The count keeps moving while the rolling deploy runs (no frozen frame).
    deploy = [f for f in frames if f["phase"].startswith("rolling deploy")]
    assert len(deploy) >= 4
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(deploy)]
    assert max(gaps) < 2.0, gaps  # ticks every 0.25 s; the old view froze for whole steps
    assert deploy[-1]["requests"] > deploy[0]["requests"]
    assert len({f["requests"] for f in deploy}) >= 3

    # A task stopped by the deploy is shown draining once discovery dropped it.
    assert any("draining (deregistered" in f["text"] for f in deploy)

    # The SIGKILLed task is never called draining, in the table or the events.
    [killed] = {
        m.group(1) for f in frames for m in [re.search(r"SIGKILL task (\w{8})", f["phase"])] if m
    }
    after = [
        f["text"]
        for f in frames
        if f["phase"].startswith(("SIGKILL", "steady load after the crash", "done"))
    ]
    for text in after:
        for line in text.splitlines():
            if killed in line:
                assert " draining" not in line.replace("deregistered (its process had died", ""), (
                    line
                )

    # Every task had its own address: a replacement never reuses one.
    addresses = list(data["tasks"].values())
    assert len(addresses) >= 7 and len(set(addresses)) == len(addresses), addresses
    # "No traffic after its stop" is no number, not 0.
    assert all(v is None or v > 0 for v in summary["traffic_left_seconds"].values())
    # The run directory is gone.
    assert not list(tmp_path.glob("ecsgrpc-demo-*"))
