"""``serve()`` tells its start, drain and stop, one line each, with no logging setup.

Each case runs a real ``serve()`` in a child process (its own interpreter, so
nothing of pytest's logging capture applies), stops it with SIGTERM and reads
what it wrote to stderr.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(60)

_HOST = "127.0.16.2"

SCRIPT = textwrap.dedent(
    """
    import asyncio, logging, sys
    from ecsgrpc.config import ServerSettings
    from ecsgrpc.server import serve
    from ecsgrpc_apps.workflow.agent import WorkflowAgentServicer, agent_service
    from ecsgrpc_apps.workflow.settings import AgentSettings

    SETUP = sys.argv[1]
    if SETUP == "basic-info":
        logging.basicConfig(level=logging.INFO, format="CONFIGURED %(name)s %(message)s")
    elif SETUP == "basic-warning":
        logging.basicConfig(level=logging.WARNING, format="CONFIGURED %(message)s")

    def started(server):
        print(f"PORT {server.port}", flush=True)

    settings = ServerSettings(host=sys.argv[2], port=0, drain_seconds=0.2, grace_seconds=1)
    servicer = WorkflowAgentServicer(AgentSettings(instance_id="logs"))
    sys.exit(asyncio.run(serve([agent_service(servicer)], settings=settings, on_started=started)))
    """
)


def _run(setup: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRPC_", "OTEL_"))}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, setup, _HOST],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line + proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def test_start_drain_stop_one_line_each_without_logging_setup() -> None:
    code, err = _run("none")
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 3, err
    start, drain, stop = lines
    assert re.search(
        rf"ecsgrpc\.server INFO serving on {re.escape(_HOST)}:\d+ \(plaintext\)$", start
    ), start
    assert re.search(
        r"INFO received SIGTERM: draining: health NOT_SERVING, serving 0\.2s more, "
        r"then up to 1s for in-flight calls$",
        drain,
    ), drain
    assert re.search(r"INFO stopped in \d+\.\d\ds$", stop), stop


def test_configured_logging_decides_instead() -> None:
    # The application's handlers get the same three lines, in its format...
    code, err = _run("basic-info")
    assert code == 0, err
    ours = [line for line in err.splitlines() if "ecsgrpc.server" in line]
    assert len(ours) == 3, err
    assert all(line.startswith("CONFIGURED ecsgrpc.server ") for line in ours), err
    assert [line.split()[2] for line in ours] == ["serving", "received", "stopped"], err
    # ...and an application that asked for warnings only sees none of them.
    code, err = _run("basic-warning")
    assert code == 0, err
    assert "serving on" not in err and "stopped in" not in err, err
