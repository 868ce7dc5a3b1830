"""After real overload, clients that re-send a refused request at once get the limit back.

A real gateway (in-process, uvicorn on loopback) over a real agent process;
the load is the bench's raw HTTP/1.1 client (:class:`HttpLoad`): keep-alive
connections, a 503 answered and the next request sent at once, never waiting
``Retry-After``.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Iterator

import pytest

from ecsgrpc_apps.bench.gateway_overload import HttpLoad
from tests.gateway.support import endpoint, running_gateway
from tests.gateway.test_hostile import address
from tests.support.agents import AgentProcess

pytestmark = pytest.mark.timeout(90)

HOST = "127.0.0.46"
AGENT_HOST = "127.0.0.47"
CLIENTS = 12  # the bench's closed loop: below the starting limit of 32


@pytest.fixture
def heap_frozen_as_in_the_gateway() -> Iterator[None]:
    """The gateway process freezes its heap after start (``GatewayServer(freeze_gc=True)``,
    as ``ecsgrpc gateway`` runs it), so full collections under load stay short. This
    in-process gateway shares the test process, whose heap holds what every earlier
    test left: a full collection of it can stall the event loop past the limiter's
    lag threshold (0.25 s), which cuts the limit as a real stall would. Frozen here
    as the gateway's own process is; unfrozen after."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("heap_frozen_as_in_the_gateway")
async def test_clients_that_retry_at_once_after_overload_get_the_limit_back(
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents(AGENT_HOST)
    async with running_gateway([endpoint(agent)], host=HOST) as gw:
        await gw.channel.channel_ready(timeout=10)
        limiter = gw.server.config.app.front.limiter
        load = HttpLoad(*address(gw))
        samples: list[tuple[str, int, int]] = []
        phase = ["before"]

        stalls = [0.0]  # the longest the event loop overslept a 20 ms sleep

        async def sample() -> None:
            loop = asyncio.get_running_loop()
            while True:
                samples.append((phase[0], limiter.limit, limiter.in_flight))
                due = loop.time() + 0.02
                await asyncio.sleep(0.02)
                stalls[0] = max(stalls[0], loop.time() - due)

        sampler = asyncio.create_task(sample())
        try:
            await load.closed_loop(CLIENTS, 1.0)  # warm-up: connections, code paths
            before = await load.closed_loop(CLIENTS, 2.0)
            served = sum(o.status == 200 for o in before) / 2.0
            assert all(o.status == 200 for o in before)  # 12 fit under the starting limit
            # Light load (teaches the limiter its no-load latency), then real
            # overload: open-loop arrivals at 3x what the closed loop served.
            await load.open_loop(0.5 * served, 2.0)
            phase[0] = "overload"
            overload, _ = await load.open_loop(3 * served, 3.0)
            low = min(limit for p, limit, _ in samples if p == "overload")
            phase[0] = "storm"
            storm = await load.closed_loop(CLIENTS, 3.0)
            phase[0] = "end"
            last = await load.closed_loop(CLIENTS, 1.0)
        finally:
            sampler.cancel()
            load.close()
        limits = [limit for p, limit, _ in samples if p == "storm"]
        end = [(limit, in_flight) for p, limit, in_flight in samples if p == "end"] or [(0, 0)]
        report = (
            f"closed loop before: {served:.0f}/s; overload: "
            f"{sum(o.status == 200 for o in overload) / 3:.0f}/s served, "
            f"{sum(o.status == 503 for o in overload) / 3:.0f}/s refused, limit down to {low}; "
            f"storm: {sum(o.status == 200 for o in storm) / 3:.0f}/s served, "
            f"{sum(o.status == 503 for o in storm) / 3:.0f}/s refused, limit "
            f"{min(limits)}-{max(limits)}; last second: "
            f"{sum(o.status == 200 for o in last):.0f} served, "
            f"{sum(o.status == 503 for o in last)} refused, limit {limiter.limit} "
            f"({min(e[0] for e in end)}-{max(e[0] for e in end)} in that second, "
            f"in flight up to {max(e[1] for e in end)}); the event loop stalled up to "
            f"{stalls[0] * 1000:.0f} ms"
        )
        if os.environ.get("STORM_REPORT"):
            print(report)
        # The overload was shed: refused, the limit below its start.
        assert low < 32, report
        assert any(o.status == 503 for o in overload), report
        # The storm is not: the limit grew back to hold the 12 clients, so the
        # last second refuses (next to) nothing.
        assert limiter.limit >= CLIENTS, report
        refused = sum(o.status == 503 for o in last)
        assert refused <= 0.05 * len(last), report
