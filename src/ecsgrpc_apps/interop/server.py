"""A gRPC interop test server, written from gRPC's interop test descriptions.

It implements ``grpc.testing.TestService`` with the server features the
descriptions name, so gRPC's interop clients (any language) and our case
runner (:mod:`ecsgrpc_apps.interop.cases`) can run against it:

- EmptyCall, UnaryCall, CacheableUnaryCall, StreamingOutputCall,
  StreamingInputCall, FullDuplexCall; UnimplementedCall and the
  ``grpc.testing.UnimplementedService`` are left unimplemented (UNIMPLEMENTED).
- Echo Metadata: ``x-grpc-test-echo-initial`` comes back in the initial
  metadata, ``x-grpc-test-echo-trailing-bin`` in the trailing metadata.
- Echo Status: a request's ``response_status`` ends the call with that code
  and message (the server processes nothing else of that call).
- CompressedResponse: ``response_compressed`` / ``ResponseParameters.compressed``
  turn gzip on or off for the answer or that one message.
- CompressedRequest: ``expect_compressed`` true fails the call with
  INVALID_ARGUMENT unless that request message arrived compressed. grpcio shows
  a handler neither the message's compressed flag nor the ``grpc-encoding``
  header, so the server turns grpc's own decompression off
  (``grpc.per_message_decompression`` = 0), receives raw bytes and inflates them
  itself: a gzip (``1f 8b``) or zlib/deflate header means the client compressed
  that message (no serialized request message of ours can start with either: the
  first would be an invalid wire type, the second field 15, which none declares).
- ``ResponseParameters.interval_us``: a pause before each response message.

Run it: ``python -m ecsgrpc_apps.interop.server --port=0 [--host=127.0.0.2]``;
it prints ``listening on HOST:PORT`` once it serves, and stops on SIGTERM or
SIGINT. The grpc.health.v1 service reports SERVING. Plaintext only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from ecsgrpc_apps.interop import (
    ECHO_INITIAL_KEY,
    ECHO_TRAILING_KEY,
    SERVICE_NAME,
    empty_pb2,
    messages_pb2,
)

__all__ = ["Received", "TestServiceServicer", "main", "service_handler", "start_server"]

# grpc.StatusCode by its wire number (EchoStatus.code is an int32).
_CODES = {code.value[0]: code for code in grpc.StatusCode}
# grpc's default limit on a received message; inflating stops there.
_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_M = TypeVar("_M", bound=Message)


class _EchoStatus(Exception):
    """Internal: end the call with the status the client asked for."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def _payload(size: int) -> messages_pb2.Payload:
    if size < 0:
        raise _EchoStatus(grpc.StatusCode.INVALID_ARGUMENT, f"negative payload size {size}")
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=bytes(size))


def _check_response_type(response_type: int) -> None:
    if response_type != messages_pb2.COMPRESSABLE:
        raise _EchoStatus(
            grpc.StatusCode.INVALID_ARGUMENT, f"unsupported response_type {response_type}"
        )


def _echo_status(status: messages_pb2.EchoStatus) -> None:
    """Echo Status: raise when the request carries a non-OK response_status."""
    if status.code == 0:
        return
    code = _CODES.get(status.code)
    if code is None:
        raise _EchoStatus(
            grpc.StatusCode.INVALID_ARGUMENT, f"response_status.code {status.code} is no gRPC code"
        )
    raise _EchoStatus(code, status.message)


@dataclass(frozen=True, slots=True)
class Received(Generic[_M]):
    """A request message and whether it arrived compressed."""

    message: _M
    compressed: bool


def _compressed(data: bytes) -> bool:
    """gzip magic, or a zlib header (CMF 0x78 with a valid check value)."""
    if data[:2] == b"\x1f\x8b":
        return True
    return len(data) >= 2 and data[0] == 0x78 and (data[0] << 8 | data[1]) % 31 == 0


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, detected
    out = inflater.decompress(data, _MAX_MESSAGE_BYTES + 1)
    if len(out) > _MAX_MESSAGE_BYTES or inflater.unconsumed_tail:
        raise ValueError(f"a request inflates past {_MAX_MESSAGE_BYTES} bytes")
    return out


def _reader(message_type: type[_M]) -> Callable[[bytes], Received[_M]]:
    """A request deserializer that inflates compressed messages and says so."""

    def read(data: bytes) -> Received[_M]:
        compressed = _compressed(data)
        return Received(message_type.FromString(_inflate(data) if compressed else data), compressed)

    return read


def _check_compressed(expect: messages_pb2.BoolValue, compressed: bool) -> None:
    if expect.value and not compressed:
        raise _EchoStatus(
            grpc.StatusCode.INVALID_ARGUMENT, "expect_compressed is true but the request was not"
        )


class _Call:
    """Echo Metadata for one call: initial metadata once, trailing at the end."""

    def __init__(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        extra_initial: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.context = context
        metadata = dict(context.invocation_metadata() or ())
        self._initial = [(k, metadata[k]) for k in (ECHO_INITIAL_KEY,) if k in metadata]
        self._initial.extend(extra_initial)
        self.trailing = tuple((k, metadata[k]) for k in (ECHO_TRAILING_KEY,) if k in metadata)
        self._sent = False
        if self.trailing:
            context.set_trailing_metadata(self.trailing)

    @property
    def headers_sent(self) -> bool:
        return self._sent

    async def send_initial(self) -> None:
        if not self._sent:
            self._sent = True
            await self.context.send_initial_metadata(self._initial)

    async def fail(self, error: _EchoStatus) -> NoReturn:
        await self.send_initial()
        await self.context.abort(error.code, error.details, self.trailing)
        raise AssertionError("abort() returned")  # pragma: no cover


class TestServiceServicer:
    """``grpc.testing.TestService`` as the interop descriptions' server features say.

    Handlers receive :class:`Received` requests (see :func:`service_handler`).
    UnimplementedCall is deliberately absent: grpc answers UNIMPLEMENTED.
    """

    __test__ = False  # a name pytest would otherwise try to collect

    def __init__(self, server_id: str) -> None:
        self.server_id = server_id
        self.hostname = socket.gethostname()

    async def EmptyCall(
        self, request: Received[empty_pb2.Empty], context: grpc.aio.ServicerContext[Any, Any]
    ) -> empty_pb2.Empty:
        call = _Call(context)
        await call.send_initial()
        return empty_pb2.Empty()

    async def UnaryCall(
        self,
        received: Received[messages_pb2.SimpleRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> messages_pb2.SimpleResponse:
        call = _Call(context)
        request = received.message
        try:
            _check_compressed(request.expect_compressed, received.compressed)
            _echo_status(request.response_status)
            _check_response_type(request.response_type)
            payload = _payload(request.response_size)
        except _EchoStatus as error:
            await call.fail(error)
        if request.HasField("response_compressed"):
            context.set_compression(
                grpc.Compression.Gzip
                if request.response_compressed.value
                else grpc.Compression.NoCompression
            )
        await call.send_initial()
        response = messages_pb2.SimpleResponse(payload=payload)
        if request.fill_server_id:
            response.server_id = self.server_id
            response.hostname = self.hostname
        return response

    async def CacheableUnaryCall(
        self,
        received: Received[messages_pb2.SimpleRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> messages_pb2.SimpleResponse:
        # Cacheable by proxies in the path for 60 s (the descriptions' value).
        call = _Call(context, [("cache-control", "max-age=60, public")])
        await call.send_initial()
        body = str(time.time_ns()).encode()
        return messages_pb2.SimpleResponse(
            payload=messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=body)
        )

    async def StreamingOutputCall(
        self,
        received: Received[messages_pb2.StreamingOutputCallRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        call = _Call(context)
        request = received.message
        try:
            _echo_status(request.response_status)
            _check_response_type(request.response_type)
            _enable_compression(context, request)
            await call.send_initial()
            await _respond(context, request)
        except _EchoStatus as error:
            await call.fail(error)

    async def StreamingInputCall(
        self,
        requests: AsyncIterator[Received[messages_pb2.StreamingInputCallRequest]],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> messages_pb2.StreamingInputCallResponse:
        call = _Call(context)
        total = 0
        try:
            async for received in requests:
                _check_compressed(received.message.expect_compressed, received.compressed)
                total += len(received.message.payload.body)
        except _EchoStatus as error:
            await call.fail(error)
        await call.send_initial()
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    async def FullDuplexCall(
        self,
        requests: AsyncIterator[Received[messages_pb2.StreamingOutputCallRequest]],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        call = _Call(context)
        try:
            async for received in requests:
                request = received.message
                _echo_status(request.response_status)
                _check_response_type(request.response_type)
                if not call.headers_sent:
                    # Compression is a call-level choice made before the headers:
                    # the first request decides it.
                    _enable_compression(context, request)
                await call.send_initial()
                await _respond(context, request)
        except _EchoStatus as error:
            await call.fail(error)
        await call.send_initial()


def service_handler(servicer: TestServiceServicer) -> grpc.GenericRpcHandler:
    """``grpc.testing.TestService``'s methods, with :func:`_reader` deserializers."""
    empty, msgs = empty_pb2, messages_pb2
    handlers = {
        "EmptyCall": grpc.unary_unary_rpc_method_handler(
            servicer.EmptyCall, _reader(empty.Empty), empty.Empty.SerializeToString
        ),
        "UnaryCall": grpc.unary_unary_rpc_method_handler(
            servicer.UnaryCall, _reader(msgs.SimpleRequest), msgs.SimpleResponse.SerializeToString
        ),
        "CacheableUnaryCall": grpc.unary_unary_rpc_method_handler(
            servicer.CacheableUnaryCall,
            _reader(msgs.SimpleRequest),
            msgs.SimpleResponse.SerializeToString,
        ),
        "StreamingOutputCall": grpc.unary_stream_rpc_method_handler(
            servicer.StreamingOutputCall,
            _reader(msgs.StreamingOutputCallRequest),
            msgs.StreamingOutputCallResponse.SerializeToString,
        ),
        "StreamingInputCall": grpc.stream_unary_rpc_method_handler(
            servicer.StreamingInputCall,
            _reader(msgs.StreamingInputCallRequest),
            msgs.StreamingInputCallResponse.SerializeToString,
        ),
        "FullDuplexCall": grpc.stream_stream_rpc_method_handler(
            servicer.FullDuplexCall,
            _reader(msgs.StreamingOutputCallRequest),
            msgs.StreamingOutputCallResponse.SerializeToString,
        ),
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def _enable_compression(
    context: grpc.aio.ServicerContext[Any, Any], request: messages_pb2.StreamingOutputCallRequest
) -> None:
    if any(p.compressed.value for p in request.response_parameters):
        context.set_compression(grpc.Compression.Gzip)


async def _respond(
    context: grpc.aio.ServicerContext[Any, Any], request: messages_pb2.StreamingOutputCallRequest
) -> None:
    """One response per ResponseParameters, each after its interval_us."""
    for params in request.response_parameters:
        payload = _payload(params.size)
        if params.interval_us > 0:
            await asyncio.sleep(params.interval_us / 1e6)
        if params.HasField("compressed") and not params.compressed.value:
            context.disable_next_message_compression()
        await context.write(messages_pb2.StreamingOutputCallResponse(payload=payload))


async def start_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    server_id: str | None = None,
    servicer: TestServiceServicer | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Start a plaintext interop server; returns it and the bound port.

    ``servicer`` replaces the default one (``server_id`` is then ignored).
    """
    # Raw request bytes reach our deserializers, which see compression (module doc).
    server = grpc.aio.server(options=[("grpc.per_message_decompression", 0)])
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpcio reports a failed bind this way
        raise OSError(f"cannot bind {address}") from exc
    if bound == 0:
        raise OSError(f"cannot bind {address}")
    if servicer is None:
        servicer = TestServiceServicer(server_id or f"{host}:{bound}")
    server.add_generic_rpc_handlers([service_handler(servicer)])
    health = HealthServicer()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    await health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    await server.start()
    return server, bound


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ecsgrpc_apps.interop.server",
        description="gRPC interop test server (grpc.testing.TestService), plaintext.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument(
        "--use_tls", type=_parse_bool, default=False, help="must be false: plaintext only"
    )
    parser.add_argument("--server_id", default=None, help="server_id answered (default HOST:PORT)")
    return parser


async def _serve(host: str, port: int, server_id: str | None) -> None:
    server, bound = await start_server(host, port, server_id=server_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {host}:{bound}", flush=True)
    await stop.wait()
    await server.stop(grace=1.0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m ecsgrpc_apps.interop.server``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.use_tls:
        parser.error("--use_tls=true is not supported: this server is plaintext only")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0..65535, got {args.port}")
    try:
        asyncio.run(_serve(args.host, args.port, args.server_id))
    except OSError as exc:
        print(
            f"error: cannot serve on --host {args.host} --port {args.port}: {exc}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
