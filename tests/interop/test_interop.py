"""gRPC's interop test cases through our channel, with a plain grpc.aio channel as control.

Every case of :mod:`ecsgrpc_apps.interop.cases` (written from gRPC's
``doc/interop-test-descriptions.md``) runs over three channel kinds against
three interop server processes on 127.0.0.2-4:

- ``grpc``: ``grpc.aio.insecure_channel`` to one server: the control, which
  must pass every case (it shows the server and the cases are right);
- ``least_request`` / ``round_robin``: ``ecsgrpc.connect("static:///a,b,c",
  policy=...)`` over the three servers.

Every case passes over all three kinds: ``connect()``'s calls have grpc.aio's
whole call API (see ``ecsgrpc.balancing.calls``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import grpc
import pytest

import ecsgrpc
from ecsgrpc_apps.interop import messages_pb2, test_pb2_grpc
from ecsgrpc_apps.interop.cases import CASES, CaseOptions, run_case
from tests.interop.conftest import InteropServers

KINDS = ("grpc", "least_request", "round_robin")

SOAK = {
    "soak_iterations": 5,
    # The descriptions leave the bound to a flag; 2 shared cores need slack.
    "soak_per_iteration_max_acceptable_latency_ms": 5000,
    "soak_overall_timeout_seconds": 60.0,
    "long_lived_interval_ms": 50,
}


def _factory(kind: str, servers: InteropServers) -> Callable[[], Any]:
    if kind == "grpc":
        return lambda: grpc.aio.insecure_channel(servers.addresses[0])
    return lambda: ecsgrpc.connect(servers.static_target, policy=kind)


def _params() -> list[Any]:
    params = []
    for case, kind in itertools.product(CASES, KINDS):
        params.append(pytest.param(case, kind, id=f"{case}-{kind}"))
    return params


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("case", "kind"), _params())
async def test_interop_case(case: str, kind: str, interop_servers: InteropServers) -> None:
    new_channel = _factory(kind, interop_servers)
    channel = new_channel()
    try:
        await run_case(case, channel, CaseOptions(new_channel=new_channel, **SOAK), timeout=60)
    finally:
        await channel.close()


@pytest.mark.timeout(60)
async def test_balanced_interop_calls_reach_every_server(interop_servers: InteropServers) -> None:
    """The matrix really spreads over the three servers (round_robin, all ready)."""
    async with ecsgrpc.connect(interop_servers.static_target, policy="round_robin") as channel:
        await channel.channel_ready(timeout=30, min_ready=3)
        stub = test_pb2_grpc.TestServiceStub(channel)
        seen = set()
        for _ in range(12):
            reply = await stub.UnaryCall(
                messages_pb2.SimpleRequest(fill_server_id=True), timeout=10
            )
            seen.add(reply.server_id)
    assert seen == set(interop_servers.addresses)
