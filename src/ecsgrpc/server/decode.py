"""Malformed request bytes get ``INVALID_ARGUMENT``, not grpc's ``INTERNAL``.

grpc (Python) answers a request it cannot deserialize with ``INTERNAL:
Exception deserializing request!``, which reads as a server fault (and some
clients retry it). :class:`DecodeGuardInterceptor` takes over each method's
request deserializer: the handler receives raw bytes, decodes them itself and
ends the call with ``INVALID_ARGUMENT`` naming the message type when they do
not parse. The servicer sees exactly the objects it saw before.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from ecsgrpc.server.handlers import Behavior

__all__ = ["DecodeGuardInterceptor"]

Deserializer = Callable[[bytes], Any]


def _type_name(decode: Deserializer) -> str:
    owner = getattr(decode, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", None) or getattr(owner, "__name__", "request"))


class DecodeGuardInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Turns undecodable requests into INVALID_ARGUMENT (every method)."""

    def __init__(self) -> None:
        self.refused = 0

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        decode = None if handler is None else handler.request_deserializer
        if decode is None:
            return handler
        kw = {"request_deserializer": None, "response_serializer": handler.response_serializer}
        guard = _Guard(self, decode)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(guard.wrap(handler.unary_unary), **kw)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(guard.wrap(handler.unary_stream), **kw)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                guard.wrap(handler.stream_unary, streamed=True), **kw
            )
        return grpc.stream_stream_rpc_method_handler(
            guard.wrap(handler.stream_stream, streamed=True), **kw
        )


class _Guard:
    """Decoding for one handler: ``wrap`` keeps the behaviour's shape (async
    generator or coroutine) so grpc handles its responses as before."""

    def __init__(self, owner: DecodeGuardInterceptor, decode: Deserializer) -> None:
        self._owner = owner
        self._decode = decode
        self._name = _type_name(decode)

    async def decode(self, raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        try:
            return self._decode(raw)
        except Exception:
            self._owner.refused += 1
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid {self._name} message ({len(raw)} bytes)",
            )

    def requests(self, raw: Any, context: grpc.aio.ServicerContext) -> Any:
        """The request (unary) or an async iterator of decoded requests (streamed)."""

        async def each() -> AsyncIterator[Any]:
            async for item in raw:
                yield await self.decode(item, context)

        return each()

    def wrap(self, behavior: Behavior, *, streamed: bool = False) -> Behavior:
        async def arguments(raw: Any, context: grpc.aio.ServicerContext) -> Any:
            return self.requests(raw, context) if streamed else await self.decode(raw, context)

        if inspect.isasyncgenfunction(behavior):

            async def generator(raw: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                async for item in behavior(await arguments(raw, context), context):
                    yield item

            return generator

        async def coroutine(raw: Any, context: grpc.aio.ServicerContext) -> Any:
            result: Awaitable[Any] = behavior(await arguments(raw, context), context)
            return await result

        return coroutine
