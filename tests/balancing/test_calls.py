"""The call contract: grpc.aio's call API, gRFC A6's commit rule, exact in-flight accounting.

Real grpc.aio servers on loopback (127.0.11.x, ephemeral ports) behind
``connect("static:///...")``; nothing of gRPC is mocked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from prometheus_client import CollectorRegistry

from ecsgrpc.balancing.channel import BalancedChannel, connect
from ecsgrpc.balancing.retry import RetryPolicy
from ecsgrpc.errors import StreamInterrupted
from tests.support import call_service as svc

pytestmark = pytest.mark.timeout(60)

HOSTS = ("127.0.11.1", "127.0.11.2", "127.0.11.3")


@asynccontextmanager
async def fleet(
    state: svc.State | None = None, n: int = 3, **kw: object
) -> AsyncIterator[tuple[BalancedChannel, svc.State, CollectorRegistry]]:
    """``n`` servers sharing ``state`` and a channel over them (every one ready)."""
    state = state or svc.State()
    servers = [await svc.start(host, host, state) for host in HOSTS[:n]]
    registry = CollectorRegistry()
    target = "static:///" + ",".join(f"{h}:{p}" for h, (_, p) in zip(HOSTS, servers, strict=False))
    channel = connect(target, registry=registry, **kw)  # type: ignore[arg-type]
    try:
        async with channel:
            await channel.channel_ready(timeout=10, min_ready=n)
            yield channel, state, registry
            await assert_no_call_in_flight(channel, registry)
    finally:
        for server, _ in servers:
            await server.stop(None)


async def assert_no_call_in_flight(channel: BalancedChannel, registry: CollectorRegistry) -> None:
    deadline = time.monotonic() + 3
    while True:
        per_endpoint = {s.address: s.in_flight for s in channel.endpoints()}
        gauge = registry.get_sample_value(
            "ecsgrpc_client_calls_in_flight", {"target": channel.target}
        )
        if set(per_endpoint.values()) <= {0} and gauge == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"in flight: endpoints {per_endpoint}, gauge {gauge}")
        await asyncio.sleep(0.02)


def executions(state: svc.State, method: str) -> int:
    return sum(n for key, n in state.executions.items() if key.endswith(":" + method))


# The grpc.aio API, as published (grpc/aio/_base_call.py, _base_channel.py).
async def test_channel_and_calls_are_grpc_aio_instances() -> None:
    async with fleet(n=1) as (channel, _, _):
        assert isinstance(channel, grpc.aio.Channel)
        unary = channel.unary_unary(svc.UNARY)
        assert isinstance(unary, grpc.aio.UnaryUnaryMultiCallable)
        assert isinstance(
            channel.unary_stream(svc.SERVER_STREAM), grpc.aio.UnaryStreamMultiCallable
        )
        assert isinstance(
            channel.stream_unary(svc.CLIENT_STREAM), grpc.aio.StreamUnaryMultiCallable
        )
        assert isinstance(channel.stream_stream(svc.BIDI), grpc.aio.StreamStreamMultiCallable)
        call = unary(b"ok", timeout=5)
        assert isinstance(call, grpc.aio.UnaryUnaryCall)
        assert await call == b"ok"
        stream = channel.unary_stream(svc.SERVER_STREAM)(b"n:2", timeout=5)
        assert isinstance(stream, grpc.aio.UnaryStreamCall)
        assert [m async for m in stream] == [b"0", b"1"]
        client = channel.stream_unary(svc.CLIENT_STREAM)(timeout=5)
        assert isinstance(client, grpc.aio.StreamUnaryCall)
        await client.write(b"a")
        await client.write(b"b")
        await client.done_writing()
        assert await client == b"a,b"
        bidi = channel.stream_stream(svc.BIDI)(timeout=5)
        assert isinstance(bidi, grpc.aio.StreamStreamCall)
        await bidi.write(b"x")
        assert await bidi.read() == b"x"
        await bidi.done_writing()
        assert await bidi.read() is grpc.aio.EOF
        assert await bidi.code() is grpc.StatusCode.OK


async def test_unary_call_status_metadata_and_callbacks() -> None:
    async with fleet(n=1) as (channel, _, _):
        seen: list[object] = []
        call = channel.unary_unary(svc.UNARY)(b"ok", timeout=5, metadata=(("k", "v"),))
        call.add_done_callback(seen.append)
        remaining = call.time_remaining()
        assert remaining is not None and 0 < remaining <= 5
        assert not call.done()
        assert await call == b"ok"
        assert call.done() and not call.cancelled()
        assert seen == [call]
        assert await call.code() is grpc.StatusCode.OK
        assert await call.details() == ""
        assert isinstance(await call.initial_metadata(), grpc.aio.Metadata)
        assert isinstance(await call.trailing_metadata(), grpc.aio.Metadata)
        late: list[object] = []
        call.add_done_callback(late.append)
        assert late == [call]

        failing = channel.unary_unary(svc.UNARY)(b"not_found", timeout=5)
        assert await failing.code() is grpc.StatusCode.NOT_FOUND  # code() first, no await
        assert await failing.details() == "asked for not_found"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await failing
        assert err.value.code() is grpc.StatusCode.NOT_FOUND


async def test_cancel_then_every_read_and_await_raises_cancelled() -> None:
    async with fleet(n=1) as (channel, _, _):
        stream = channel.unary_stream(svc.SERVER_STREAM)(b"sleep:5", timeout=10)
        await stream.wait_for_connection()
        assert stream.cancel()
        assert stream.cancelled() and stream.done()
        assert not stream.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stream.read()
        with pytest.raises(asyncio.CancelledError):
            async for _ in stream:
                pass
        assert await stream.code() is grpc.StatusCode.CANCELLED

        unary = channel.unary_unary(svc.UNARY)(b"sleep:5", timeout=10)
        assert unary.cancel()
        with pytest.raises(asyncio.CancelledError):
            await unary
        assert await unary.code() is grpc.StatusCode.CANCELLED

        bidi = channel.stream_stream(svc.BIDI)(timeout=10)
        await bidi.write(b"a")
        assert await bidi.read() == b"a"
        bidi.cancel()
        with pytest.raises(asyncio.CancelledError):
            await bidi.write(b"b")
        with pytest.raises(asyncio.CancelledError):
            await bidi.read()


async def test_caller_task_cancelled_while_awaiting_cancels_the_call() -> None:
    async with fleet(n=1) as (channel, _, _):
        call = channel.unary_unary(svc.UNARY)(b"sleep:5", timeout=10)
        task = asyncio.ensure_future(call)
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert call.cancelled()
        assert await call.code() is grpc.StatusCode.CANCELLED


async def test_a_unary_call_outlives_its_awaiting_coroutine_as_in_grpc_aio() -> None:
    # grpc.aio runs a unary call in a task of its own from its creation: the
    # coroutine awaiting it, closed before the answer (coroutine.close(), or
    # dropped and collected), neither cancels it nor strands it. The call then
    # finishes with the server's answer, a later await returns it, and the
    # endpoint's in-flight count comes back to 0 (before the call path was
    # grpc.aio's own call, closing the awaiter cancelled the call). A plain
    # grpc.aio channel to the same server is the control.
    async with fleet(n=1) as (channel, _, registry):
        address = channel.endpoints()[0].address
        async with grpc.aio.insecure_channel(address) as plain:
            for name, ch in (("plain grpc.aio", plain), ("ecsgrpc", channel)):
                calls = [ch.unary_unary(svc.UNARY)(b"sleep:0.5", timeout=10) for _ in range(2)]

                async def caller(call: grpc.aio.UnaryUnaryCall) -> object:
                    return await call

                closed, dropped = caller(calls[0]), caller(calls[1])
                for coroutine in (closed, dropped):  # each waits for its call's answer
                    waited = coroutine.send(None)
                    # What a task does with the future a coroutine yields (asyncio's
                    # protocol): else a later await of that future fails.
                    waited._asyncio_future_blocking = False
                if ch is channel:
                    assert sum(s.in_flight for s in channel.endpoints()) == 2
                closed.close()
                del dropped  # collected at once (a suspended coroutine is closed)
                assert not any(c.done() or c.cancelled() for c in calls), name
                for call in calls:
                    assert await call == b"sleep:0.5", name
                    assert call.done() and not call.cancelled(), name
                    assert await call.code() is grpc.StatusCode.OK, name
        await assert_no_call_in_flight(channel, registry)


async def test_reading_a_stream_two_ways_is_a_usage_error_as_in_grpc_aio() -> None:
    async with fleet(n=1) as (channel, _, _):
        method = channel.unary_stream(svc.SERVER_STREAM)
        read_first = method(b"n:3", timeout=5)
        assert await read_first.read() == b"0"
        with pytest.raises(grpc.aio.UsageError):
            [m async for m in read_first]
        assert await read_first.read() == b"1"  # reading on the same way still works
        read_first.cancel()
        iterated_first = method(b"n:3", timeout=5)
        async for message in iterated_first:
            assert message == b"0"
            break
        with pytest.raises(grpc.aio.UsageError):
            await iterated_first.read()
        assert [m async for m in iterated_first] == [b"1", b"2"]


async def test_streams_read_with_grpc_aios_own_per_message_read() -> None:
    # The per-message fast path relies on two grpc.aio internals (the read under
    # its response iterator and the status check after it); a grpcio without
    # them falls back to the public read(), correct but slower: say so here.
    from grpc.aio import _call as grpc_call

    from ecsgrpc.balancing import calls

    assert calls._RAW_READ
    assert callable(grpc_call.UnaryStreamCall._read)
    assert callable(grpc_call.StreamStreamCall._raise_for_status)


async def test_request_iterators_sync_and_async() -> None:
    async with fleet(n=1) as (channel, _, _):
        assert (
            await channel.stream_unary(svc.CLIENT_STREAM)(iter([b"1", b"2"]), timeout=5) == b"1,2"
        )

        async def gen() -> AsyncIterator[bytes]:
            for item in (b"a", b"b", b"c"):
                yield item

        call = channel.stream_stream(svc.BIDI)(gen(), timeout=5)
        assert [m async for m in call] == [b"a", b"b", b"c"]
        with pytest.raises(grpc.aio.UsageError):
            await call.write(b"d")


async def test_deadline_exceeded_reports_its_code() -> None:
    async with fleet(n=1) as (channel, _, _):
        call = channel.unary_unary(svc.UNARY)(b"sleep:2", timeout=0.2)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert await call.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert call.time_remaining() == 0


# The commit rule (gRFC A6).
async def test_stream_is_not_retried_once_the_caller_read_its_headers() -> None:
    """Regression: the server executed this call 3 times (retried after headers were read)."""
    async with fleet() as (channel, state, _):
        call = channel.unary_stream(svc.SERVER_STREAM)(b"bare-headers-unavailable", timeout=5)
        assert len(await call.initial_metadata()) == 0  # headers, but no custom metadata
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert err.value.code() is grpc.StatusCode.UNAVAILABLE
        assert executions(state, "ServerStream") == 1


async def test_trailers_only_failure_does_not_commit_a_metadata_reader() -> None:
    async with fleet() as (channel, state, _):
        call = channel.unary_stream(svc.SERVER_STREAM)(b"unavailable", timeout=5)
        await call.initial_metadata()  # no headers came: the caller saw nothing
        assert await call.code() is grpc.StatusCode.UNAVAILABLE
        assert executions(state, "ServerStream") == 3  # every attempt the policy allows


async def test_headers_received_commit_even_when_the_caller_did_not_read_them() -> None:
    async with fleet() as (channel, state, _):
        for kind, method, arg in (
            ("unary_unary", svc.UNARY, b"headers-unavailable"),
            ("unary_stream", svc.SERVER_STREAM, b"headers-unavailable"),
        ):
            call = getattr(channel, kind)(method)(arg, timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                if kind == "unary_unary":
                    await call
                else:
                    await call.read()
            assert err.value.code() is grpc.StatusCode.UNAVAILABLE
            assert (await call.initial_metadata())["x-seen"] == "headers"
        assert executions(state, "Unary") == 1
        assert executions(state, "ServerStream") == 1


async def test_trailers_only_unavailable_is_retried_elsewhere() -> None:
    async with fleet(svc.State(fail_first=1)) as (channel, state, _):
        assert await channel.unary_unary(svc.UNARY)(b"ok", timeout=5) == b"ok"
        assert executions(state, "Unary") == 2
        state.fail_first = 1
        stream = channel.unary_stream(svc.SERVER_STREAM)(b"n:3", timeout=5)
        assert [m async for m in stream] == [b"0", b"1", b"2"]
        assert executions(state, "ServerStream") == 2


async def test_written_requests_are_replayed_to_the_next_attempt() -> None:
    async with fleet(svc.State(fail_first=1)) as (channel, state, _):
        call = channel.stream_unary(svc.CLIENT_STREAM)(timeout=5)
        await call.write(b"a")
        await call.write(b"b")
        await call.done_writing()
        assert await call == b"a,b"
        assert executions(state, "ClientStream") == 2
        assert sorted(state.received.values()) == [[b"a", b"b"], [b"a", b"b"]]

        state.fail_first = 1
        state.received.clear()
        bidi = channel.stream_stream(svc.BIDI)(iter([b"x", b"y"]), timeout=5)
        assert [m async for m in bidi] == [b"x", b"y"]
        assert sorted(state.received.values()) == [[b"x", b"y"], [b"x", b"y"]]


async def test_a_stream_that_yielded_messages_is_never_replayed() -> None:
    async with fleet() as (channel, state, _):
        call = channel.unary_stream(svc.SERVER_STREAM)(b"after:2:unavailable", timeout=5)
        got = []
        with pytest.raises(StreamInterrupted) as err:
            async for message in call:
                got.append(message)
        assert got == [b"0", b"1"]
        assert err.value.code() is grpc.StatusCode.UNAVAILABLE
        assert await call.code() is grpc.StatusCode.UNAVAILABLE
        assert executions(state, "ServerStream") == 1


async def test_write_after_the_call_failed_is_an_error_never_a_new_attempt() -> None:
    """Regression: write() on a failed stream started a new attempt and leaked in-flight=1."""
    async with fleet() as (channel, state, registry):
        call = channel.stream_stream(svc.BIDI)(timeout=5)
        await call.write(b"internal")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert err.value.code() is grpc.StatusCode.INTERNAL
        with pytest.raises(asyncio.InvalidStateError):
            await call.write(b"again")
        await call.done_writing()  # a no-op once finished, as in grpc.aio
        with pytest.raises(grpc.aio.AioRpcError):
            await call.read()
        assert executions(state, "Bidi") == 1
        await assert_no_call_in_flight(channel, registry)


async def test_budget_and_attempts_bound_retries_of_uncommitted_calls() -> None:
    policy = RetryPolicy(max_attempts=2)
    async with fleet(retry=policy) as (channel, state, _):
        call = channel.unary_unary(svc.UNARY)(b"unavailable", timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() is grpc.StatusCode.UNAVAILABLE
        assert executions(state, "Unary") == 2


async def test_cancel_stops_a_call_waiting_for_an_endpoint_at_once() -> None:
    registry = CollectorRegistry()
    # Nothing listens on port 1: the endpoint never becomes ready.
    async with connect("static:///127.0.11.9:1", registry=registry, connect_timeout=20) as channel:
        for kind, method in (("unary_unary", svc.UNARY), ("unary_stream", svc.SERVER_STREAM)):
            call = getattr(channel, kind)(method)(b"ok")
            waiter = asyncio.ensure_future(call if kind == "unary_unary" else call.read())
            await asyncio.sleep(0.3)
            assert not waiter.done()
            started = time.monotonic()
            assert call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(waiter, 5)
            assert time.monotonic() - started < 2
            assert await call.code() is grpc.StatusCode.CANCELLED
        await assert_no_call_in_flight(channel, registry)


async def test_a_unary_call_is_sent_when_created_as_in_grpc_aio() -> None:
    # grpc.aio sends a unary call when it is made, not when it is awaited; with an
    # endpoint ready, a balanced channel's unary call is grpc.aio's own call on that
    # endpoint and does the same (before, it waited for its first use). A plain
    # grpc.aio channel to the same server is the control.
    async with fleet(n=1) as (channel, state, _):
        async with grpc.aio.insecure_channel(channel.endpoints()[0].address) as plain:
            for name, ch in (("plain grpc.aio", plain), ("ecsgrpc", channel)):
                before = executions(state, "Unary")
                call = ch.unary_unary(svc.UNARY)(b"ok", timeout=5)
                deadline = time.monotonic() + 5
                while executions(state, "Unary") == before:  # not awaited: sent anyway
                    assert time.monotonic() < deadline, name
                    await asyncio.sleep(0.01)
                assert await call == b"ok", name


async def test_a_retried_unary_call_answers_as_its_last_attempt() -> None:
    # The first attempt fails trailers-only (UNAVAILABLE) and the call is retried on
    # another endpoint: what the caller asked before and during the retry (status,
    # headers, a done callback) answers for the call, never for the failed attempt.
    async with fleet(svc.State(fail_first=1)) as (channel, state, _):
        seen: list[object] = []
        call = channel.unary_unary(svc.UNARY)(b"ok", timeout=5)
        call.add_done_callback(seen.append)
        code = asyncio.ensure_future(call.code())
        headers = asyncio.ensure_future(call.initial_metadata())  # trailers-only: no commit
        assert await call == b"ok"
        assert await code is grpc.StatusCode.OK
        assert isinstance(await headers, grpc.aio.Metadata)
        assert await call.details() == ""
        assert call.done() and not call.cancelled()
        assert seen == [call]
        late: list[object] = []
        call.add_done_callback(late.append)
        assert late == [call]
        assert executions(state, "Unary") == 2


async def test_cancel_reaches_the_attempt_a_unary_call_was_retried_to() -> None:
    async with fleet(svc.State(fail_first=1)) as (channel, state, registry):
        call = channel.unary_unary(svc.UNARY)(b"sleep:5", timeout=10)
        waiter = asyncio.ensure_future(call)
        deadline = time.monotonic() + 5
        while executions(state, "Unary") < 2:  # failed once, retried, now sleeping
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert not call.done()
        started = time.monotonic()
        assert call.cancel()
        assert not call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiter, 5)
        assert time.monotonic() - started < 2
        assert call.cancelled() and call.done()
        assert await call.code() is grpc.StatusCode.CANCELLED
        await assert_no_call_in_flight(channel, registry)
