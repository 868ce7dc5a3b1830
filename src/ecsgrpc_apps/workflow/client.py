"""``WorkflowClient``: the seed's client, done right.

It talks to the Workflow Agents through a :class:`BalancedChannel` chosen by
the environment (``WORKFLOW_SERVICE_TARGET``, else the seed's
``WORKFLOW_SERVICE_HOST``/``WORKFLOW_SERVICE_PORT``, else Cloud Map with a DNS
fallback), so every call goes to a healthy agent, and a stream is never
replayed after it produced output. An ``xds:///NAME`` target uses gRPC's own
xDS client instead (:func:`ecsgrpc.xds.xds_channel`, docs/xds.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, Self, cast

from ecsgrpc.balancing.channel import BalancedChannel, connect
from ecsgrpc_apps.workflow import pb2, workflow_stub

__all__ = ["FLOW_CONTROL_OPTIONS", "WorkflowClient", "build_request"]

# gRPC channel arguments for backpressure: without them grpc core's BDP probe
# grows a stream's receive window to what the link can carry, so a slow
# consumer (the gateway relaying to a slow HTTP client) gets nearly a whole
# long reply buffered in its memory (measured: 43.5 MB for a reader that
# reads slowly, 2.9 MB with the probe off). With a fixed 64 KiB window the
# agent's stream waits for the reader instead.
FLOW_CONTROL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", 16 * 1024),
)


def build_request(
    conversation_id: str,
    messages: Iterable[tuple[str, str]] | Iterable[Mapping[str, str]],
    metadata: Mapping[str, str] | None = None,
) -> pb2.ConversationRequest:
    """A request from ``(role, content)`` pairs or ``{"role", "content"}`` mappings."""
    built = []
    for message in messages:
        if isinstance(message, Mapping):
            built.append(pb2.Message(role=message["role"], content=message["content"]))
        else:
            role, content = message
            built.append(pb2.Message(role=role, content=content))
    return pb2.ConversationRequest(
        conversation_id=conversation_id, messages=built, metadata=dict(metadata or {})
    )


class WorkflowClient:
    """Calls ``workflow.v1.WorkflowAgent`` over a balanced channel.

    ``target`` defaults to the environment's choice (see module docstring);
    ``channel_options`` go to :func:`ecsgrpc.connect`; its ``options`` get
    :data:`FLOW_CONTROL_OPTIONS` unless they set those keys. Unless they include
    ``security``, TLS and the bearer token come from the environment
    (``WORKFLOW_SERVICE_TLS_*``, ``WORKFLOW_SERVICE_AUTH_TOKEN[_FILE]``; see
    :mod:`ecsgrpc.security.settings`). Raises ConfigError naming a bad
    variable or file. Use ``async with`` or :meth:`aclose`. Safe for many
    concurrent calls on one loop.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        timeout: float = 60.0,
        channel: BalancedChannel | None = None,
        **channel_options: Any,
    ) -> None:
        if channel is None:
            if target is None:
                from ecsgrpc_apps.workflow.settings import target_from_env

                target = target_from_env()
            if "security" not in channel_options:
                from ecsgrpc.security.settings import client_security_from_env

                security = client_security_from_env()
                if security.enabled:
                    channel_options["security"] = security
            if isinstance(target, str) and target.startswith("xds:"):
                # gRPC's own xDS client, fed by an ecsgrpc xds control plane.
                from ecsgrpc.xds.channel import xds_channel

                # XdsChannel has the BalancedChannel members callers read.
                channel = cast(BalancedChannel, xds_channel(target))
            else:
                given = list(channel_options.get("options", ()))
                names = {name for name, _ in given}
                channel_options["options"] = given + [
                    option for option in FLOW_CONTROL_OPTIONS if option[0] not in names
                ]
                channel = connect(target, **channel_options)
        self.channel = channel
        self.timeout = timeout
        self._stub = workflow_stub(channel)

    async def process_conversation(
        self,
        request: pb2.ConversationRequest,
        *,
        timeout: float | None = None,
        metadata: Iterable[tuple[str, str]] | None = None,
    ) -> AsyncIterator[pb2.ConversationEvent]:
        """Stream the agent's events for ``request``.

        Raises grpc.aio.AioRpcError for the call's status (INVALID_ARGUMENT,
        DEADLINE_EXCEEDED, ...), ecsgrpc.NoEndpointAvailable when no agent is
        ready, and ecsgrpc.StreamInterrupted when a stream breaks after
        yielding events (it is not replayed, so no event is ever duplicated).
        """
        call = self._stub.ProcessConversation(
            request,
            timeout=self.timeout if timeout is None else timeout,
            metadata=tuple(metadata) if metadata else None,
        )
        try:
            async for event in call:
                yield event
        finally:
            call.cancel()

    async def aclose(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> Self:
        await self.channel.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
