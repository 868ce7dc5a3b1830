"""What the gateway measuring scripts share (gateway_cost.py, goodput_pairs.py, p99_probe.py).

* :class:`Variant`: a code variant named on the command line;
* :func:`pinned_agents`: three agents, and this process, on every core but the
  first, which is left to the gateway under test; yields the agents' static
  target and the gateway's core.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ecsgrpc_apps.bench.fleet import AgentFleet
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
    """``count`` agents and this process pinned off the first core; yields
    (the agents' ``static:///`` target, the first core: the gateway's)."""
    cores = sorted(os.sched_getaffinity(0))
    core, others = cores[0], set(cores[1:]) or {cores[0]}
    fleet = AgentFleet(count, dns=False)
    print(f"start {time.strftime('%H:%M:%S', time.gmtime())} load {os.getloadavg()}", flush=True)
    try:
        spec = await fleet.start()
        for agent in fleet.agents:
            pin(agent.pid, others)
        pin(os.getpid(), others)
        yield "static:///" + ",".join(spec.addresses), core
    finally:
        await fleet.aclose()
