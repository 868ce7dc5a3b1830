"""The closed-loop round the overhead and client_bound scenarios share, against a real agent."""

from __future__ import annotations

import asyncio

import pytest

from ecsgrpc_apps.bench.closed_loop import run_round
from ecsgrpc_apps.bench.contenders import CONTENDERS
from ecsgrpc_apps.bench.fleet import AgentFleet

_RAW = next(c for c in CONTENDERS if c.name == "raw_grpc_aio")


@pytest.mark.timeout(60)
async def test_a_timed_round_makes_a_call_per_worker_however_short_it_is() -> None:
    # A round that started late (a busy machine, a long collection) must still
    # measure something: a round of 0 s has every worker call once, so no
    # contender's row can be "0 calls/s" and make its ratios empty.
    fleet = AgentFleet(1, first_host=71, dns=False)
    try:
        client = await _RAW.open(await fleet.start())
        try:
            r = await run_round(client, "unary", 3, seconds=0.0)
            assert r.calls + r.errors >= 3
            assert r.errors == 0
            assert r.calls_per_second > 0
            counted = await run_round(client, "stream", 2, calls=5)
            assert (counted.calls, counted.errors) == (5, 0)
        finally:
            await client.aclose()
    finally:
        await fleet.aclose()


def test_a_round_takes_seconds_or_calls_not_both() -> None:
    with pytest.raises(ValueError, match="seconds or calls"):
        asyncio.run(run_round(None, "unary", 1))  # type: ignore[arg-type]
