"""``xds:///NAME`` channels for applications written against :func:`ecsgrpc.connect`.

:func:`xds_channel` returns gRPC's own channel (C-core resolves and balances
from the control plane) wrapped in :class:`XdsChannel`, which adds the few
``BalancedChannel`` members an application may read (``ready_count``,
``channel_ready()``, ``endpoints()``), so code can switch between the two by
target alone. The bootstrap is taken from ``GRPC_XDS_BOOTSTRAP_CONFIG`` or
``GRPC_XDS_BOOTSTRAP`` when set; else it is built from ``ECSGRPC_XDS_SERVERS``
(comma-separated ``HOST:PORT`` of the control plane replicas, or its Cloud Map
DNS name), with the zone and node id from the ECS task metadata endpoint.

Needs no extra: the xDS client is grpcio's.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import MutableMapping, Sequence
from types import TracebackType
from typing import Any, Self

import grpc

from ecsgrpc.errors import ConfigError
from ecsgrpc.xds.bootstrap import bootstrap_json

__all__ = [
    "SERVERS_ENV",
    "XdsChannel",
    "check_xds_target",
    "ensure_bootstrap",
    "is_xds_target",
    "xds_channel",
]

SERVERS_ENV = "ECSGRPC_XDS_SERVERS"
_BOOTSTRAP_ENVS = ("GRPC_XDS_BOOTSTRAP_CONFIG", "GRPC_XDS_BOOTSTRAP")
_TARGET = re.compile(r"^xds:(//[^/]*)?/+([A-Za-z0-9][A-Za-z0-9._:-]*)$")


def is_xds_target(target: str) -> bool:
    return target.startswith("xds:")


def check_xds_target(target: str) -> str:
    """``target`` if it is ``xds:///NAME`` (or ``xds://AUTHORITY/NAME``); else ConfigError."""
    if not _TARGET.match(target):
        raise ConfigError(
            f"xDS target {target!r}: expected xds:///NAME, e.g. xds:///workflow-agent"
        )
    return target


def ensure_bootstrap(env: MutableMapping[str, str] | None = None) -> None:
    """Make sure gRPC will find a bootstrap: keep one that is set, else build it from
    ``ECSGRPC_XDS_SERVERS``. Call before the first ``xds:`` channel of the process
    (gRPC reads the bootstrap when it creates its xDS client)."""
    environ = os.environ if env is None else env
    if any(environ.get(name) for name in _BOOTSTRAP_ENVS):
        return
    servers = [s.strip() for s in environ.get(SERVERS_ENV, "").split(",") if s.strip()]
    if not servers:
        raise ConfigError(
            f"an xds: target needs a bootstrap: set {SERVERS_ENV} (the control plane's "
            "HOST:PORT) or GRPC_XDS_BOOTSTRAP_CONFIG (see docs/xds.md)"
        )
    try:
        environ["GRPC_XDS_BOOTSTRAP_CONFIG"] = bootstrap_json(servers)
    except ConfigError as exc:
        raise ConfigError(f"{SERVERS_ENV}: {exc}") from None


class XdsChannel:
    """A ``grpc.aio.Channel`` on an ``xds:`` target, with ``BalancedChannel``'s
    read-only members. Endpoints are C-core's and not visible: ``endpoints()``
    is empty and ``ready_count`` is 1 while the channel is READY, else 0."""

    def __init__(self, channel: grpc.aio.Channel, target: str) -> None:
        self._channel = channel
        self.target = target

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_unary(method, *args, **kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_stream(method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_unary(method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_stream(method, *args, **kwargs)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    @property
    def ready_count(self) -> int:
        return int(self._channel.get_state(False) is grpc.ChannelConnectivity.READY)

    async def channel_ready(self, timeout: float | None = None, min_ready: int = 1) -> None:
        """Wait until the channel is READY (``min_ready`` above 1 cannot be observed
        through gRPC's channel and is treated as 1). Raises TimeoutError."""
        await asyncio.wait_for(self._channel.channel_ready(), timeout)

    def endpoints(self) -> Sequence[Any]:
        return ()

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def xds_channel(
    target: str,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> XdsChannel:
    """gRPC's channel on ``xds:///NAME`` (the bootstrap ensured first; see the module)."""
    check_xds_target(target)
    ensure_bootstrap()
    opts = [("grpc.keepalive_time_ms", 60_000), *options]
    channel = (
        grpc.aio.secure_channel(target, credentials, options=opts)
        if credentials is not None
        else grpc.aio.insecure_channel(target, options=opts)
    )
    return XdsChannel(channel, target)
