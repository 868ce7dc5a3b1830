"""The interop server's features beyond what the client cases touch, and its command.

Server features are those of gRPC's interop descriptions ("Server" section):
Observe ResponseParameters.interval_us, CacheableUnaryCall, Echo Status on
streams, Echo Metadata on a failed call, CompressedRequest with deflate,
INVALID_ARGUMENT for what the server cannot answer. The command follows the
descriptions' server flags (``--port``, ``--use_tls``).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecsgrpc_apps.interop import ECHO_INITIAL_KEY, ECHO_TRAILING_KEY, messages_pb2, test_pb2_grpc
from ecsgrpc_apps.interop.server import start_server
from tests.interop.conftest import start_interop_server, stop_all

pytestmark = pytest.mark.timeout(60)

HOST = "127.0.0.2"


@pytest.fixture
async def stub() -> AsyncIterator[Any]:
    server, port = await start_server(HOST, 0, server_id="server-under-test")
    try:
        async with grpc.aio.insecure_channel(f"{HOST}:{port}") as channel:
            yield test_pb2_grpc.TestServiceStub(channel)
    finally:
        await server.stop(None)


async def test_interval_us_delays_each_response_after_the_previous(stub: Any) -> None:
    request = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[
            messages_pb2.ResponseParameters(size=1, interval_us=150_000) for _ in range(3)
        ]
    )
    started = time.monotonic()
    arrivals = [time.monotonic() - started async for _ in stub.StreamingOutputCall(request)]
    assert len(arrivals) == 3
    # Each pause is at least interval_us after the previous response (lower bounds only).
    assert arrivals[0] >= 0.14
    assert arrivals[1] - arrivals[0] >= 0.14
    assert arrivals[2] - arrivals[1] >= 0.14


async def test_cacheable_unary_call_sets_cache_control_and_a_fresh_timestamp(stub: Any) -> None:
    first = stub.CacheableUnaryCall(messages_pb2.SimpleRequest())
    second = stub.CacheableUnaryCall(messages_pb2.SimpleRequest())
    one, two = await first, await second
    assert ("cache-control", "max-age=60, public") in list(await first.initial_metadata())
    assert one.payload.body.isdigit() and two.payload.body.isdigit()
    assert one.payload.body != two.payload.body


async def test_echo_status_ends_a_server_stream_with_that_status(stub: Any) -> None:
    request = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[messages_pb2.ResponseParameters(size=10)],
        response_status=messages_pb2.EchoStatus(code=5, message="no such thing"),
    )
    call = stub.StreamingOutputCall(request)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [r async for r in call]
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "no such thing"


async def test_echo_metadata_survives_a_failed_call(stub: Any) -> None:
    metadata = ((ECHO_INITIAL_KEY, "v"), (ECHO_TRAILING_KEY, b"\x01\x02"))
    request = messages_pb2.SimpleRequest(
        response_status=messages_pb2.EchoStatus(code=9, message="precondition")
    )
    call = stub.UnaryCall(request, metadata=metadata)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert (ECHO_INITIAL_KEY, "v") in list(await call.initial_metadata())
    assert (ECHO_TRAILING_KEY, b"\x01\x02") in list(await call.trailing_metadata())


@pytest.mark.parametrize("compression", [grpc.Compression.Gzip, grpc.Compression.Deflate])
async def test_compressed_request_is_recognised_per_algorithm(
    stub: Any, compression: grpc.Compression
) -> None:
    request = messages_pb2.SimpleRequest(
        response_size=10,
        payload=messages_pb2.Payload(body=bytes(5000)),
        expect_compressed=messages_pb2.BoolValue(value=True),
    )
    reply = await stub.UnaryCall(request, compression=compression)
    assert len(reply.payload.body) == 10


async def test_each_streamed_request_is_judged_on_its_own(stub: Any) -> None:
    """A compressed call's messages are all compressed: expect_compressed holds on each."""
    call = stub.StreamingInputCall(compression=grpc.Compression.Gzip)
    for size in (100, 2000):
        await call.write(
            messages_pb2.StreamingInputCallRequest(
                payload=messages_pb2.Payload(body=bytes(size)),
                expect_compressed=messages_pb2.BoolValue(value=True),
            )
        )
    await call.done_writing()
    assert (await call).aggregated_payload_size == 2100


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        (messages_pb2.SimpleRequest(response_size=-1), "negative payload size -1"),
        (
            messages_pb2.SimpleRequest(response_status=messages_pb2.EchoStatus(code=99)),
            "response_status.code 99",
        ),
        (messages_pb2.SimpleRequest(response_type=7), "unsupported response_type 7"),
    ],
    ids=["negative-size", "unknown-code", "unknown-type"],
)
async def test_what_the_server_cannot_answer_is_invalid_argument(
    stub: Any, request_: messages_pb2.SimpleRequest, fragment: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UnaryCall(request_)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in caught.value.details()


async def test_server_id_and_health(stub: Any) -> None:
    reply = await stub.UnaryCall(messages_pb2.SimpleRequest(fill_server_id=True))
    assert reply.server_id == "server-under-test"
    assert reply.hostname == socket.gethostname()


async def test_server_process_serves_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc, address = start_interop_server(HOST, tmp_path / "server.log")
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="grpc.testing.TestService"), timeout=10
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 15) == 0
    finally:
        stop_all([proc])


def _server_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecsgrpc_apps.interop.server", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--use_tls=true"], "--use_tls=true is not supported"),
        (["--use_tls=maybe"], "expected true or false, got 'maybe'"),
        (["--port=70000"], "--port must be 0..65535, got 70000"),
    ],
)
def test_server_command_rejects_bad_flags_in_one_line(args: list[str], fragment: str) -> None:
    result = _server_cli(*args)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_server_command_names_a_port_it_cannot_bind() -> None:
    with socket.socket() as held:
        held.bind((HOST, 0))
        held.listen()
        port = held.getsockname()[1]
        result = _server_cli(f"--host={HOST}", f"--port={port}")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    # grpc's core may log its own line first; ours is the last, and names the flag.
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and f"--port {port}" in last
