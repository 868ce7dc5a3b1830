"""``apply_cpu_policy``: every thread of the process, and the threads started later.

Each case runs in a child interpreter, so this test process keeps its own policy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ecsgrpc_apps.scheduling import CPU_POLICIES, apply_cpu_policy

pytestmark = pytest.mark.timeout(30)

_CHILD = r"""
import json, os, sys, threading
from ecsgrpc_apps.scheduling import apply_cpu_policy, thread_policies
stop = threading.Event()
before = threading.Thread(target=stop.wait)
before.start()
done = apply_cpu_policy(sys.argv[1])
after = threading.Thread(target=stop.wait)
after.start()
policies = list(thread_policies(os.getpid()).values())
print(json.dumps({"done": done, "policies": policies, "threads": len(policies)}))
stop.set()
"""


def _run(policy: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, policy],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return dict(json.loads(out.stdout))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux scheduling policies")
@pytest.mark.parametrize("policy", sorted(CPU_POLICIES))
def test_threads_before_and_after_get_the_policy(policy: str) -> None:
    got = _run(policy)
    assert got["done"] == policy
    assert got["threads"] == 3  # main, one thread started before, one after
    assert got["policies"] == [getattr(os, CPU_POLICIES[policy])] * 3


def test_an_unknown_policy_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'fifo'"):
        apply_cpu_policy("fifo")
