"""Light load brings an unused concurrency limit down toward what it uses.

A real gateway (in-process, uvicorn on loopback) over a real agent process;
the load is the bench's raw HTTP/1.1 client (:class:`HttpLoad`), open loop.
The limit is read where operators read it: the gateway's ``/metrics``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import pytest

from ecsgrpc_apps.bench.gateway_overload import HttpLoad
from tests.gateway.support import endpoint, running_gateway
from tests.gateway.test_hostile import address
from tests.support.agents import AgentProcess

pytestmark = pytest.mark.timeout(60)

HOST = "127.0.0.52"
AGENT_HOST = "127.0.0.53"


async def test_light_load_brings_the_limit_down_from_its_start(
    agents: Callable[..., AgentProcess],
) -> None:
    # Before: light load left the limit at its start (32), and a step to 1.5x
    # the capacity admitted 32 at once; their queue was the step's p99.
    agent = agents(AGENT_HOST)
    async with running_gateway([endpoint(agent)], host=HOST) as gw:
        await gw.channel.channel_ready(timeout=10)
        load = HttpLoad(*address(gw))
        try:
            await load.closed_loop(1, 0.5)  # warm-up: a connection, the code paths
            outcomes, _ = await load.open_loop(100, 4.0)  # a few at a time at most
        finally:
            load.close()
        async with gw.http() as http:
            metrics = (await http.get("/metrics")).text
    gauge = re.search(r"^ecsgrpc_gateway_concurrency_limit (\S+)$", metrics, re.M)
    assert gauge, metrics[:2000]
    limit = float(gauge.group(1))
    codes = Counter(o.status for o in outcomes)
    assert sum(codes.values()) == 400
    # 3 x its recent peak in flight + 1, at least 10: far below the start of 32.
    assert 10 <= limit <= 16, (limit, codes)
    # Nothing refused on the way down, but for a stall of the shared machine
    # (the load generator runs in this process): 300 ms at 100/s is 30 at once,
    # more than any limit here; measured quiet, none.
    assert codes[200] >= 0.95 * 400, (limit, codes)
