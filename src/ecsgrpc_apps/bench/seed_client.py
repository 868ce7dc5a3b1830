"""A seed-style client, for the benchmark only: it reproduces the seed's flaws on purpose.

This is ``EnhancedWorkflowGRPCClient`` from the reference system's original
design, written down so the benchmark can measure
what a user following the seed would get. **Do not use it**: every flaw below
is kept deliberately, because measuring it is the point.

What it does, as the seed does:

* ``connect()``: discover the endpoints, then try each *in turn*, waiting up
  to 5 s for ``channel_ready``, and keep the **first** that answers. All calls
  then go to that one endpoint (no balancing; a long-lived HTTP/2 channel
  pins every call to one task).
* On ``UNAVAILABLE`` a call marks the client disconnected, runs ``connect()``
  again, and **replays the whole call once**. For a stream that already
  yielded events, the caller receives those events a second time (duplicated
  output: repeated ``sequence`` numbers).
* Concurrent failures each reconnect, without a lock; each ``connect()``
  replaces the shared channel before it is ready (other calls may use a
  channel that is still connecting), and old channels are not closed until
  :meth:`SeedStyleClient.aclose` (the seed never closes them).
* Discovery happens only in ``connect()``: a task added later is never seen
  until a failure forces a reconnect.

Two deviations, both in the seed's favour and both needed to run it inside a
shared benchmark process: discovery is an injected coroutine (the benchmark
asks dnsmasq with dnspython's async resolver, or returns a fixed list)
instead of a blocking ``socket.getaddrinfo`` on the event loop, which would
stall every other contender measured in the same process; and the seed's
``print`` calls are omitted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc

from ecsgrpc_apps.workflow import pb2, workflow_stub

__all__ = ["CONNECT_TIMEOUT", "SeedStyleClient"]

CONNECT_TIMEOUT = 5.0  # the seed's wait for channel_ready, per endpoint

Discover = Callable[[], Awaitable[Sequence[str]]]


class SeedStyleClient:
    """The seed's ``EnhancedWorkflowGRPCClient`` (discovery mode), flaws included.

    ``discover`` returns ``host:port`` strings in the order the seed would try
    them. :attr:`replays` counts calls replayed after ``UNAVAILABLE`` and
    :attr:`reconnects` the ``connect()`` runs after the first.
    """

    def __init__(self, discover: Discover) -> None:
        self._discover = discover
        self.channel: grpc.aio.Channel | None = None
        self.stub: Any = None
        self.connected = False
        self.address: str | None = None
        self.replays = 0
        self.reconnects = 0
        self._all_channels: list[grpc.aio.Channel] = []

    async def connect(self) -> None:
        """Try each discovered endpoint in turn; keep the first ready within 5 s."""
        endpoints = await self._discover()
        if not endpoints:
            raise ConnectionError("No workflow service instances found")
        for address in endpoints:
            # As in the seed: the shared channel and stub are replaced before
            # the new channel is known to work.
            self.channel = grpc.aio.insecure_channel(address)
            self._all_channels.append(self.channel)
            self.stub = workflow_stub(self.channel)
            try:
                await asyncio.wait_for(self.channel.channel_ready(), timeout=CONNECT_TIMEOUT)
            except (TimeoutError, grpc.RpcError):
                continue
            self.connected = True
            self.address = address
            return
        raise ConnectionError("Failed to connect to any discovered service instances")

    async def reconnect_if_needed(self) -> None:
        if not self.connected:
            await self.connect()

    async def _reconnect(self) -> None:
        self.connected = False
        self.reconnects += 1
        await self.connect()

    async def process_conversation(
        self, request: pb2.ConversationRequest, *, timeout: float | None = None
    ) -> AsyncIterator[pb2.ConversationEvent]:
        """Stream the events; on UNAVAILABLE reconnect and replay the whole call once."""
        await self.reconnect_if_needed()
        try:
            async for event in self.stub.ProcessConversation(request, timeout=timeout):
                yield event
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            await self._reconnect()
            self.replays += 1
            async for event in self.stub.ProcessConversation(request, timeout=timeout):
                yield event

    async def describe_agent(self, *, timeout: float | None = None) -> pb2.AgentInfo:
        """The unary call, with the seed's reconnect-and-retry-once applied to it."""
        await self.reconnect_if_needed()
        try:
            info: pb2.AgentInfo = await self.stub.DescribeAgent(
                pb2.DescribeAgentRequest(), timeout=timeout
            )
            return info
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            await self._reconnect()
            self.replays += 1
            info = await self.stub.DescribeAgent(pb2.DescribeAgentRequest(), timeout=timeout)
            return info

    async def aclose(self) -> None:
        """Close every channel this client ever opened."""
        channels, self._all_channels = self._all_channels, []
        for channel in channels:
            await channel.close()
