"""Client-side security for the balanced channel: TLS credentials and a bearer token.

:class:`ClientSecurity` is the value users pass (``connect(target,
security=...)``); :class:`ChannelSecurity` is what the channel holds: the
loaded credentials and a factory for per-endpoint grpc channels that add
``authorization: Bearer <token>`` to every call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from ecsgrpc.security.client_tls import ClientCredentialsSource, ClientTls
from ecsgrpc.security.tokens import BearerToken

__all__ = ["ChannelSecurity", "ClientSecurity", "MetadataChannel"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClientSecurity:
    """TLS (None: plaintext) and a bearer token (None: none sent)."""

    tls: ClientTls | None = None
    token: BearerToken | None = None

    @property
    def enabled(self) -> bool:
        return self.tls is not None or self.token is not None


class ChannelSecurity:
    """Loaded client security: reads the TLS files at construction (ConfigError
    naming the setting and file), then builds per-endpoint channels from memory."""

    def __init__(self, security: ClientSecurity) -> None:
        self.security = security
        self._source: ClientCredentialsSource | None = (
            None if security.tls is None else security.tls.load()
        )
        self._metadata: tuple[tuple[str, str], ...] = (
            () if security.token is None else (("authorization", security.token.header_value()),)
        )

    @property
    def tls(self) -> bool:
        return self._source is not None

    def options(self) -> list[tuple[str, Any]]:
        return [] if self.security.tls is None else self.security.tls.channel_options()

    def new_channel(
        self,
        address: str,
        options: Sequence[tuple[str, Any]],
        credentials: grpc.ChannelCredentials | None = None,
    ) -> Any:
        """A grpc.aio channel to ``address`` (no I/O: safe on the event loop).

        ``credentials`` (raw, fixed) are used when these settings have no TLS.
        """
        opts = [*options, *self.options()]
        if self._source is not None:
            credentials = self._source.current()
        if credentials is not None:
            channel = grpc.aio.secure_channel(address, credentials, options=opts)
        else:
            channel = grpc.aio.insecure_channel(address, options=opts)
        return MetadataChannel(channel, self._metadata) if self._metadata else channel

    async def refresh(self) -> bool:
        """Re-read changed TLS files in a thread; True when new credentials apply
        to the channels built from now on."""
        if self._source is None:
            return False
        return await asyncio.to_thread(self._source.refresh)


class MetadataChannel:
    """A grpc.aio channel whose calls all carry ``metadata`` (the caller's own
    entries with the same keys win). Everything else is the wrapped channel's."""

    def __init__(self, channel: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._channel = channel
        self._metadata = metadata
        self._keys = frozenset(k for k, _ in metadata)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)

    @property
    def raw(self) -> Any:
        """The wrapped grpc.aio channel (its calls do not add the metadata: see merged())."""
        return self._channel

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> _WithMetadata:
        return _WithMetadata(self._channel.unary_unary(method, *args, **kwargs), self)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> _WithMetadata:
        return _WithMetadata(self._channel.unary_stream(method, *args, **kwargs), self)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> _WithMetadata:
        return _WithMetadata(self._channel.stream_unary(method, *args, **kwargs), self)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> _WithMetadata:
        return _WithMetadata(self._channel.stream_stream(method, *args, **kwargs), self)

    def merged(self, metadata: Any) -> tuple[tuple[str, Any], ...]:
        given = tuple(metadata) if metadata else ()
        if not given:
            return self._metadata
        keys = {k for k, _ in given}
        return (*given, *((k, v) for k, v in self._metadata if k not in keys))


class _WithMetadata:
    __slots__ = ("_inner", "_owner")

    def __init__(self, inner: Any, owner: MetadataChannel) -> None:
        self._inner = inner
        self._owner = owner

    def __call__(self, request: Any = None, *, metadata: Any = None, **kwargs: Any) -> Any:
        return self._inner(request, metadata=self._owner.merged(metadata), **kwargs)
