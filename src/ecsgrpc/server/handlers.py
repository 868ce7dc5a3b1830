"""Rebuild a ``grpc.RpcMethodHandler`` with its behaviour wrapped (for interceptors)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

__all__ = ["Wrap", "rejecting_handler", "wrap_handler"]

Behavior = Callable[..., Any]
# (behavior, response_streaming) -> wrapped behavior
Wrap = Callable[[Behavior, bool], Behavior]


def wrap_handler(handler: grpc.RpcMethodHandler, wrap: Wrap) -> grpc.RpcMethodHandler:
    """The same handler (kind, (de)serializers) with ``wrap`` applied to its behaviour."""
    kw = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, False), **kw)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, True), **kw)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, False), **kw)
    return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream, True), **kw)


def rejecting_handler(code: grpc.StatusCode, details: str) -> grpc.RpcMethodHandler:
    """A handler that ends any call with ``code`` before reading a request.

    It is stream-stream with no deserializer, so the request bytes of a
    rejected call are never parsed, whatever the method's real kind.
    """

    async def reject(
        requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        await _abort(context, code, details)
        yield b""  # pragma: no cover - abort raised

    return grpc.stream_stream_rpc_method_handler(reject)


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str) -> None:
    aborting: Awaitable[None] = context.abort(code, details)
    await aborting
