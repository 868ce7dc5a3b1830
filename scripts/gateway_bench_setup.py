"""What the gateway measuring scripts share (gateway_cost.py, goodput_pairs.py, p99_probe.py).

* :class:`Variant`: a code variant named on the command line;
* :func:`pinned_agents`: three agent endpoints (one :class:`AgentPool`
  process), and this process, on every core but the first, which is left
  to the gateway under test; yields the agents' static target and the
  gateway's core.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ecsgrpc_apps.bench.agent_pool import AgentPool
from ecsgrpc_apps.bench.gateway_overload import pin

__all__ = ["Variant", "pinned_agents"]


@dataclass
class Variant:
    """``NAME``, ``NAME=SRC`` (``PYTHONPATH=SRC``), then ``,KEY=VALUE`` environment."""

    name: str
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Variant:
        head, *extra = text.split(",")
        name, _, src = head.partition("=")
        env = dict(item.split("=", 1) for item in extra)
        if src:
            env["PYTHONPATH"] = src
        return cls(name, env)


@contextlib.asynccontextmanager
async def pinned_agents(count: int = 3) -> AsyncIterator[tuple[str, int]]:
    """``count`` agent endpoints (one :class:`AgentPool` process, as the bench's
    ``gateway_overload`` runs them) and this process pinned off the first core;
    yields (the agents' ``static:///`` target, the first core: the gateway's)."""
    cores = sorted(os.sched_getaffinity(0))
    core, others = cores[0], set(cores[1:]) or {cores[0]}
    pool = AgentPool([f"127.0.0.{41 + i}" for i in range(count)])
    print(f"start {time.strftime('%H:%M:%S', time.gmtime())} load {os.getloadavg()}", flush=True)
    try:
        addresses = await asyncio.to_thread(pool.start)
        pin(pool.pid, others)
        pin(os.getpid(), others)
        yield "static:///" + ",".join(addresses), core
    finally:
        await asyncio.to_thread(pool.stop)
