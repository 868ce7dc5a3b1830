"""The contenders: every client a user could pick, behind one small interface.

Each contender is opened on a :class:`Fleet` (what a client of that kind would
be configured with) and gives a :class:`Client` that makes the two calls of
the reference service. All of them use the same generated stub, so the
difference measured is the client, not the call.

* ``raw_grpc_aio``: one ``grpc.aio`` channel to the first agent (the seed's
  starting point, ``WORKFLOW_SERVICE_HOST``).
* ``native_round_robin``: gRPC's own ``round_robin`` over an ``ipv4:`` list,
  with ``healthCheckConfig`` (client health checks, gRFC A17).
* ``native_dns_round_robin``: gRPC's ``dns://NS:PORT/name:port`` (c-ares,
  pointed at dnsmasq) with ``round_robin`` and ``healthCheckConfig``.
* ``seed_style``: :class:`~ecsgrpc_apps.bench.seed_client.SeedStyleClient`.
* ``ecsgrpc_round_robin``, ``ecsgrpc_least_request``: :func:`ecsgrpc.connect`
  on the Cloud Map target when there is one, else ``static:///``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import dns.asyncresolver
import dns.exception
import grpc
from prometheus_client import CollectorRegistry

import ecsgrpc
from ecsgrpc.balancing.channel import BalancedChannel
from ecsgrpc_apps.bench.seed_client import SeedStyleClient
from ecsgrpc_apps.workflow import pb2, workflow_stub

__all__ = [
    "CONTENDERS",
    "NATIVE_KEEPALIVE",
    "Client",
    "Contender",
    "DnsName",
    "Fleet",
    "conversation",
]

_UNARY_REQUEST = pb2.DescribeAgentRequest()
_READY_TIMEOUT = 20.0


def conversation(words: int, cid: str) -> pb2.ConversationRequest:
    """A request the agent answers with ``words + 2`` events (START, deltas, COMPLETE)."""
    return pb2.ConversationRequest(
        conversation_id=cid,
        messages=[pb2.Message(role="user", content=" ".join(f"w{i}" for i in range(words)))],
    )


@dataclass(frozen=True, slots=True)
class DnsName:
    """A name served by dnsmasq: ``nameserver`` is ``host:port``."""

    nameserver: str
    name: str
    port: int

    @property
    def target(self) -> str:
        return f"dns://{self.nameserver}/{self.name}:{self.port}"


@dataclass(frozen=True)
class Fleet:
    """What a client is configured with: the addresses known at start, and discovery."""

    addresses: tuple[str, ...]
    dns: DnsName | None = None
    cloudmap: str | None = None
    resolver_options: Mapping[str, Any] = field(default_factory=dict)
    size: int = 0  # endpoints a ready client should see (default: len(addresses))

    @property
    def expected(self) -> int:
        return self.size or len(self.addresses)


class Client(Protocol):
    """One contender, opened and ready. One event loop."""

    name: str

    async def unary(self, timeout: float) -> str:
        """``DescribeAgent``; returns the serving agent's instance id."""

    def stream(self, request: pb2.ConversationRequest, timeout: float) -> AsyncIterator[Any]:
        """``ProcessConversation``'s events."""

    def retries(self) -> float:
        """Attempts retried or replayed so far (0 when the client cannot tell)."""

    async def aclose(self) -> None: ...


class ChannelClient:
    """A contender that is a channel (grpc.aio or BalancedChannel) plus the stub."""

    def __init__(self, name: str, channel: Any, registry: CollectorRegistry | None = None) -> None:
        self.name = name
        self.channel = channel
        self._stub = workflow_stub(channel)
        self._registry = registry

    async def unary(self, timeout: float) -> str:
        info = await self._stub.DescribeAgent(_UNARY_REQUEST, timeout=timeout)
        return str(info.instance_id)

    def stream(self, request: pb2.ConversationRequest, timeout: float) -> AsyncIterator[Any]:
        return self._stub.ProcessConversation(request, timeout=timeout)  # type: ignore[no-any-return]

    def retries(self) -> float:
        if self._registry is None:
            return 0.0
        total = 0.0
        for family in self._registry.collect():
            if family.name == "ecsgrpc_client_retries":
                total += sum(s.value for s in family.samples if s.name.endswith("_total"))
        return total

    async def aclose(self) -> None:
        await self.channel.close()


class SeedClient:
    """Adapter of :class:`SeedStyleClient` to :class:`Client`."""

    def __init__(self, name: str, client: SeedStyleClient) -> None:
        self.name = name
        self.seed = client

    async def unary(self, timeout: float) -> str:
        return str((await self.seed.describe_agent(timeout=timeout)).instance_id)

    def stream(self, request: pb2.ConversationRequest, timeout: float) -> AsyncIterator[Any]:
        return self.seed.process_conversation(request, timeout=timeout)

    def retries(self) -> float:
        return float(self.seed.replays)

    async def aclose(self) -> None:
        await self.seed.aclose()


def _native_config() -> str:
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "healthCheckConfig": {"serviceName": ""},
        }
    )


async def _native_ready(channel: grpc.aio.Channel, expected: int, timeout: float) -> None:
    # channel_ready() means one subchannel is READY; a few calls let the
    # others connect too (round_robin connects to all of them at once).
    await asyncio.wait_for(channel.channel_ready(), timeout)
    stub = workflow_stub(channel)
    for _ in range(3 * expected):
        await stub.DescribeAgent(_UNARY_REQUEST, timeout=timeout)


async def open_raw(fleet: Fleet) -> Client:
    channel = grpc.aio.insecure_channel(fleet.addresses[0])
    await asyncio.wait_for(channel.channel_ready(), _READY_TIMEOUT)
    return ChannelClient("raw_grpc_aio", channel)


async def open_native_rr(fleet: Fleet) -> Client:
    target = "ipv4:" + ",".join(fleet.addresses)
    channel = grpc.aio.insecure_channel(target, options=[("grpc.service_config", _native_config())])
    await _native_ready(channel, len(fleet.addresses), _READY_TIMEOUT)
    return ChannelClient("native_round_robin", channel)


async def open_native_keepalive(fleet: Fleet) -> Client:
    """``native_round_robin`` plus a client keepalive ping every 10 s, 5 s to answer."""
    target = "ipv4:" + ",".join(fleet.addresses)
    options = [
        ("grpc.service_config", _native_config()),
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
    channel = grpc.aio.insecure_channel(target, options=options)
    await _native_ready(channel, fleet.expected, _READY_TIMEOUT)
    return ChannelClient("native_keepalive_round_robin", channel)


async def open_native_dns(fleet: Fleet) -> Client:
    if fleet.dns is None:
        raise RuntimeError("no DNS name in this fleet")
    channel = grpc.aio.insecure_channel(
        fleet.dns.target, options=[("grpc.service_config", _native_config())]
    )
    await _native_ready(channel, fleet.expected, _READY_TIMEOUT)
    return ChannelClient("native_dns_round_robin", channel)


def _seed_discovery(fleet: Fleet) -> Callable[[], Awaitable[Sequence[str]]]:
    name = fleet.dns
    if name is None:
        addresses = fleet.addresses

        async def fixed() -> Sequence[str]:
            return addresses

        return fixed
    host, port = name.nameserver.rsplit(":", 1)
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = int(port)
    resolver.lifetime = 2.0

    async def lookup() -> Sequence[str]:
        try:
            answer = await resolver.resolve(name.name, "A")
        except dns.exception.DNSException:
            return []
        return [f"{record.address}:{name.port}" for record in answer]

    return lookup


async def open_seed(fleet: Fleet) -> Client:
    client = SeedStyleClient(_seed_discovery(fleet))
    await client.connect()
    return SeedClient("seed_style", client)


def _open_ecsgrpc(policy: str) -> Callable[[Fleet], Awaitable[Client]]:
    async def opener(fleet: Fleet) -> Client:
        registry = CollectorRegistry()
        if fleet.cloudmap is not None:
            channel: BalancedChannel = ecsgrpc.connect(
                fleet.cloudmap,
                policy=policy,
                registry=registry,
                resolver_options=dict(fleet.resolver_options),
            )
        else:
            target = "static:///" + ",".join(fleet.addresses)
            channel = ecsgrpc.connect(target, policy=policy, registry=registry)
        await channel.channel_ready(timeout=_READY_TIMEOUT, min_ready=fleet.expected)
        return ChannelClient(f"ecsgrpc_{policy}", channel, registry)

    return opener


@dataclass(frozen=True)
class Contender:
    """A named way to build a client; ``needs_dns``: skipped without dnsmasq."""

    name: str
    description: str
    open: Callable[[Fleet], Awaitable[Client]]
    needs_dns: bool = False


CONTENDERS: tuple[Contender, ...] = (
    Contender("raw_grpc_aio", "one grpc.aio channel to the first agent", open_raw),
    Contender(
        "native_round_robin",
        "grpc round_robin over an ipv4: list, healthCheckConfig",
        open_native_rr,
    ),
    Contender(
        "native_dns_round_robin",
        "grpc dns:// (c-ares, dnsmasq) + round_robin, healthCheckConfig",
        open_native_dns,
        needs_dns=True,
    ),
    Contender(
        "seed_style",
        "the seed's client: first endpoint that answers, replay once on UNAVAILABLE",
        open_seed,
    ),
    Contender(
        "ecsgrpc_round_robin", "ecsgrpc.connect(policy='round_robin')", _open_ecsgrpc("round_robin")
    ),
    Contender(
        "ecsgrpc_least_request",
        "ecsgrpc.connect(policy='least_request')",
        _open_ecsgrpc("least_request"),
    ),
)
# Run only where silence matters (silent_failure): elsewhere it is native_round_robin.
NATIVE_KEEPALIVE = Contender(
    "native_keepalive_round_robin",
    "native_round_robin + keepalive ping every 10 s, 5 s timeout",
    open_native_keepalive,
)
