"""Open registries: target schemes (``register_scheme``) and policies by name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

import ecsgrpc
from ecsgrpc.endpoints import Endpoint, EndpointSet
from ecsgrpc.targets import CustomSpec, parse_target

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def health_port() -> AsyncIterator[int]:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(), server)
    port = server.add_insecure_port("127.0.13.10:0")
    await server.start()
    yield port
    await server.stop(None)


class _Registry(ecsgrpc.PollingResolver):
    """A scheme ``inventory://PORT``: the one endpoint 127.0.13.10:PORT."""

    def __init__(self, target: str, options: Any, registry: Any) -> None:
        super().__init__("inventory", target, options=options, registry=registry)
        self._port = int(target.removeprefix("inventory://"))

    async def _fetch(self) -> EndpointSet:
        return EndpointSet.of([Endpoint("127.0.13.10", self._port)], source=self.name)


async def test_a_registered_scheme_resolves_and_serves_calls(health_port: int) -> None:
    ecsgrpc.register_scheme("inventory", _Registry)
    assert parse_target(f"inventory://{health_port}") == CustomSpec(
        "inventory", f"inventory://{health_port}"
    )
    # Also as a link of a fallback chain.
    target = f"inventory://{health_port}|dns:///agent.invalid:1"
    for t in (f"inventory://{health_port}", target):
        async with ecsgrpc.connect(t) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    ("scheme", "says"),
    [("dns", "built in"), ("unix", "built in"), ("9x", "must match"), ("", "must match")],
)
def test_built_in_and_bad_scheme_names_are_refused(scheme: str, says: str) -> None:
    with pytest.raises(ecsgrpc.ConfigError, match=says):
        ecsgrpc.register_scheme(scheme, _Registry)


def test_unknown_scheme_lists_the_registered_ones() -> None:
    ecsgrpc.register_scheme("inventory", _Registry)
    with pytest.raises(ecsgrpc.ConfigError, match="inventory"):
        parse_target("nosuch://x")


class _FirstPicker(ecsgrpc.Picker[Any]):
    def pick(self, exclude: Any = ()) -> Any:
        return next((c for c in self.candidates if c.key not in exclude), None)


def _first(candidates: Sequence[Any]) -> ecsgrpc.Picker[Any]:
    return _FirstPicker(candidates)


async def test_a_registered_policy_is_used_by_name(health_port: int) -> None:
    ecsgrpc.register_policy("first_ready", _first)
    async with ecsgrpc.connect(f"127.0.13.10:{health_port}", policy="first_ready") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_an_unknown_policy_is_an_error() -> None:
    with pytest.raises(ecsgrpc.ConfigError, match="unknown policy 'nope'"):
        ecsgrpc.connect("127.0.0.1:1", policy="nope")
    with pytest.raises(ecsgrpc.ConfigError, match="built in"):
        ecsgrpc.register_policy("round_robin", _first)
