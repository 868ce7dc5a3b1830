"""remove_leftover_rules: a killed run's rules go, another live run's rules stay."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from ecsgrpc_apps.local.blackhole import BlackHole, iptables_missing, remove_leftover_rules

pytestmark = pytest.mark.timeout(60)

HOST = "127.0.12.250"  # an address no test serves on


def _listed(port: int) -> int:
    listing = subprocess.run(
        ["iptables", "-w", "5", "-S", "OUTPUT"], capture_output=True, text=True, check=True
    )
    return sum(
        f"--dport {port} " in line or f"--sport {port} " in line
        for line in listing.stdout.splitlines()
    )


@pytest.fixture
def other_process() -> Iterator[subprocess.Popen[bytes]]:
    if (reason := iptables_missing()) is not None:
        pytest.skip(reason)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_rules_of_a_live_run_stay_and_of_a_dead_run_go(
    other_process: subprocess.Popen[bytes],
) -> None:
    theirs = BlackHole(HOST, 9, owner=other_process.pid)
    mine = BlackHole(HOST, 10)
    try:
        theirs.open()
        mine.open()
        assert _listed(9) == 2 and _listed(10) == 2
        remove_leftover_rules()
        assert _listed(9) == 2, "another live process's rules were removed"
        assert _listed(10) == 0, "this process's own leftovers stayed"
        other_process.kill()
        other_process.wait(timeout=10)
        remove_leftover_rules()
        assert _listed(9) == 0, "a dead process's rules stayed"
    finally:
        theirs.close()
        mine.close()
    assert _listed(9) == 0 and _listed(10) == 0
