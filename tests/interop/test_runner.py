"""The case runner: its cases catch a server that breaks the descriptions, and its command.

A case that passes against anything proves nothing, so each sabotaged server
below breaks one promise of the interop descriptions and the matching case
must fail, naming the broken condition.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from ecsgrpc_apps.interop import messages_pb2
from ecsgrpc_apps.interop.cases import CASES, CaseFailed, run_case
from ecsgrpc_apps.interop.server import Received, TestServiceServicer, start_server
from tests.interop.conftest import InteropServers

pytestmark = pytest.mark.timeout(60)

HOST = "127.0.0.3"
Context = Any


class ShortAnswers(TestServiceServicer):
    """UnaryCall answers one byte fewer than asked."""

    async def UnaryCall(self, received: Received[Any], context: Context) -> Any:
        response = await super().UnaryCall(received, context)
        response.payload.body = response.payload.body[:-1]
        return response


class NoEcho(TestServiceServicer):
    """UnaryCall ignores the Echo Metadata keys."""

    async def UnaryCall(self, received: Received[Any], context: Context) -> Any:
        return messages_pb2.SimpleResponse(
            payload=messages_pb2.Payload(body=bytes(received.message.response_size))
        )


class WrongStatusMessage(TestServiceServicer):
    """Echo Status with the message altered."""

    async def UnaryCall(self, received: Received[Any], context: Context) -> Any:
        status = received.message.response_status
        if status.code:
            await context.abort(grpc.StatusCode.UNKNOWN, status.message.strip())
        return await super().UnaryCall(received, context)


class TrustsEveryRequest(TestServiceServicer):
    """CompressedRequest ignored: every request counts as compressed."""

    async def UnaryCall(self, received: Received[Any], context: Context) -> Any:
        return await super().UnaryCall(Received(received.message, True), context)


class ExtraResponse(TestServiceServicer):
    """FullDuplexCall sends one response too many at the end."""

    async def FullDuplexCall(self, requests: AsyncIterator[Any], context: Context) -> None:
        await super().FullDuplexCall(requests, context)
        await context.write(messages_pb2.StreamingOutputCallResponse())


class NeverAnswers(TestServiceServicer):
    """StreamingInputCall never returns (a hung server)."""

    async def StreamingInputCall(self, requests: AsyncIterator[Any], context: Context) -> Any:
        async for _ in requests:
            pass
        await asyncio.sleep(3600)


@pytest.mark.parametrize(
    ("servicer_type", "case", "fragment"),
    [
        (ShortAnswers, "large_unary", "314158 bytes, expected 314159"),
        (NoEcho, "custom_metadata", "lacks x-grpc-test-echo-initial"),
        (WrongStatusMessage, "special_status_message", "status message"),
        (TrustsEveryRequest, "client_compressed_unary", "expected INVALID_ARGUMENT"),
        (ExtraResponse, "ping_pong", "more than four responses"),
        (NeverAnswers, "client_streaming", "did not finish within 1.0 s"),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
async def test_a_case_fails_when_the_server_breaks_its_promise(
    servicer_type: type[TestServiceServicer], case: str, fragment: str
) -> None:
    server, port = await start_server(HOST, 0, servicer=servicer_type("sabotaged"))
    try:
        async with grpc.aio.insecure_channel(f"{HOST}:{port}") as channel:
            with pytest.raises(CaseFailed) as caught:
                await run_case(case, channel, timeout=1.0)
        assert fragment in str(caught.value)
    finally:
        await server.stop(None)


async def test_channel_soak_needs_a_channel_factory() -> None:
    server, port = await start_server(HOST, 0)
    try:
        async with grpc.aio.insecure_channel(f"{HOST}:{port}") as channel:
            with pytest.raises(CaseFailed, match=r"needs CaseOptions\.new_channel"):
                await run_case("channel_soak", channel)
    finally:
        await server.stop(None)


def _client(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecsgrpc_apps.interop.client", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_client_command_lists_every_case() -> None:
    result = _client("--list")
    assert result.returncode == 0
    assert result.stdout.split() == list(CASES)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--target=127.0.0.2:1", "--test_case=nope"], "--test_case 'nope': unknown case nope"),
        (["--test_case=all"], "give --target, or --server_host and --server_port"),
        (["--server_host=127.0.0.2", "--server_port=0"], "--server_port must be 1..65535"),
        (["--target=bogus:///x"], "--target 'bogus:///x'"),
        (["--target=127.0.0.2:1", "--policy=fastest"], "--policy 'fastest'"),
    ],
    ids=["case", "no-target", "port", "scheme", "policy"],
)
def test_client_command_rejects_bad_input_in_one_line(args: list[str], fragment: str) -> None:
    result = _client(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert fragment in last


def test_client_command_runs_every_case_against_a_server(interop_servers: InteropServers) -> None:
    host, port = interop_servers.addresses[0].rsplit(":", 1)
    result = _client(
        f"--server_host={host}", f"--server_port={port}", "--channel=grpc", "--test_case=all"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("PASS ")] == list(CASES)
    assert lines[-1] == f"{len(CASES)} passed, 0 failed"


def test_client_command_runs_through_connect(interop_servers: InteropServers) -> None:
    result = _client(
        f"--target={interop_servers.static_target}",
        "--policy=round_robin",
        "--test_case=empty_unary,large_unary",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "2 passed, 0 failed"


def test_client_command_exits_1_when_a_case_fails() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.3", 0))
        port = probe.getsockname()[1]
    result = _client(
        f"--target=127.0.0.3:{port}", "--channel=grpc", "--test_case=empty_unary", "--timeout=20"
    )
    assert result.returncode == 1
    assert result.stdout.startswith("FAIL empty_unary")
    assert "UNAVAILABLE" in result.stdout
    assert result.stdout.splitlines()[-1] == "0 passed, 1 failed"
