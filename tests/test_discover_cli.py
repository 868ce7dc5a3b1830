"""``ecsgrpc discover``: table, JSON, watch until Ctrl-C, one-line errors."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecsgrpc_apps.local.emulator import AwsEmulator
from tests.support.dnsmasq import Dnsmasq

pytestmark = pytest.mark.timeout(60)


def _run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecsgrpc", "discover", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )


def test_table_of_a_static_target() -> None:
    result = _run("static:///127.0.0.2:50051,127.0.0.3:50052")
    assert result.returncode == 0, result.stderr
    for text in (
        "host",
        "port",
        "zone",
        "health",
        "instance id",
        "source",
        "127.0.0.2",
        "50052",
        "static",
    ):
        assert text in result.stdout


async def test_json_of_a_cloudmap_target(aws: AwsEmulator) -> None:
    svc = await asyncio.to_thread(aws.provision_cloudmap)
    attrs = {
        "AWS_INSTANCE_IPV4": "10.0.0.1",
        "AWS_INSTANCE_PORT": "50051",
        "AVAILABILITY_ZONE": "us-east-1a",
    }
    await asyncio.to_thread(aws.register_instance, svc, "task-1", attrs)
    result = await asyncio.to_thread(_run, "cloudmap://workflow.local/workflow-agent", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 1
    assert rows[0]["host"] == "10.0.0.1"
    assert rows[0]["port"] == 50051
    assert rows[0]["attributes"]["availability_zone"] == "us-east-1a"
    assert rows[0]["attributes"]["instance_id"] == "task-1"
    assert rows[0]["source"] == "cloudmap"


def test_bad_target_is_one_line_and_exit_2() -> None:
    result = _run("cloudmap://ns/svc?health=SICK")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0
    assert "health='SICK' is not one of" in result.stderr
    assert "Traceback" not in result.stderr


def test_unresolvable_target_is_one_line_and_exit_1(dnsmasq: Dnsmasq) -> None:
    result = _run(f"dns://{dnsmasq.nameserver}/missing.test:50051", "--timeout", "1")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "cannot resolve" in result.stderr and "NXDOMAIN" in result.stderr


@pytest.fixture
def ctrl_c_reaches_children() -> Iterator[None]:
    """Children see Ctrl-C as from a terminal, however this suite was started.

    A non-interactive shell that starts a command in the background (``make test &``,
    ``nohup ... &``) sets SIGINT to ignored, and an ignored signal stays ignored in every
    child (the convention that keeps Ctrl-C from reaching background jobs): the
    ``discover --watch`` started here would never see its Ctrl-C.
    """
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if ignored:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.usefixtures("ctrl_c_reaches_children")
def test_watch_prints_each_change_until_ctrl_c(dnsmasq: Dnsmasq) -> None:
    dnsmasq.set_hosts({"agent.test": ["127.0.0.2"]})
    time.sleep(0.3)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ecsgrpc",
            "discover",
            f"dns://{dnsmasq.nameserver}/agent.test:50051",
            "--watch",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A child that does not stop dumps every thread's stack on SIGABRT (below).
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert [row["host"] for row in first] == ["127.0.0.2"]
        dnsmasq.set_hosts({"agent.test": ["127.0.0.2", "127.0.0.3"]})
        second = json.loads(proc.stdout.readline())
        assert sorted(row["host"] for row in second) == ["127.0.0.2", "127.0.0.3"]
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit 10 s after SIGINT; {_stuck_child_report(proc)}")
        assert code == 0
        assert proc.stderr is not None
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def _stuck_child_report(proc: subprocess.Popen[str]) -> str:
    """The child's signal state and, after SIGABRT, its threads' stacks (faulthandler)."""
    try:
        status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        signals = " ".join(line for line in status if line.startswith(("Sig", "Threads")))
    except OSError as exc:
        signals = f"no /proc status ({exc})"
    proc.send_signal(signal.SIGABRT)
    try:
        _, stderr = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        stderr = "(no stack: it did not die on SIGABRT either)"
    return f"{signals}; stderr:\n{stderr}"
