"""The four call kinds over a balanced channel, with safe retries.

Each call: pick an endpoint, make the attempt on that endpoint's grpc.aio
channel, report the outcome to the balancer, and retry on a *different*
endpoint only while nothing of the response has reached the caller and the
failure says the request was not processed (see ``retry.py``). A stream that
already yielded a message is never replayed: the caller gets
:class:`~ecsgrpc.errors.StreamInterrupted` carrying the original status code.
The caller's deadline (``timeout``) covers every attempt and the wait for an
endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from ecsgrpc.balancing.retry import backoff_seconds, jitter
from ecsgrpc.errors import StreamInterrupted

if TYPE_CHECKING:
    from ecsgrpc.balancing.channel import BalancedChannel
    from ecsgrpc.balancing.subchannel import Subchannel

__all__ = ["StreamCallables", "UnaryUnaryCallable"]

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED


class _Attempts:
    """Bookkeeping shared by every call kind: deadline, tried endpoints, metrics."""

    __slots__ = ("attempt", "channel", "code", "deadline", "method", "started", "tried")

    def __init__(self, channel: BalancedChannel, method: str, timeout: float | None) -> None:
        self.channel = channel
        self.method = method
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout
        self.tried: tuple[str, ...] = ()
        self.attempt = 0
        self.code = grpc.StatusCode.UNKNOWN
        channel._call_started()

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    async def pick(self, wait_for_ready: bool | None) -> Subchannel:
        self.attempt += 1
        sub = await self.channel._pick(self.tried, self.deadline, wait_for_ready)
        sub.in_flight += 1
        return sub

    async def may_retry(self, sub: Subchannel, code: grpc.StatusCode) -> bool:
        """After a failed attempt with nothing delivered: retry elsewhere?"""
        channel = self.channel
        policy = channel._retry_policy
        if self.attempt >= policy.max_attempts or not policy.retryable(
            code, idempotent=self.method in channel._idempotent
        ):
            return False
        remaining = self.remaining()
        pause = backoff_seconds(policy, self.attempt + 1, jitter)
        if remaining is not None and remaining <= pause:
            return False
        if not channel._budget.try_spend():
            channel._metrics.failures.labels(self.method, "retry_budget_exhausted").inc()
            return False
        self.tried = (*self.tried, sub.key)
        channel._metrics.retries.labels(self.method).inc()
        await asyncio.sleep(pause)
        return True

    def finish(self, code: grpc.StatusCode) -> None:
        self.code = code
        self.channel._call_finished(self.method, code, time.monotonic() - self.started)


class UnaryUnaryCallable:
    """``channel.unary_unary(...)``: call it to get an awaitable call."""

    def __init__(self, channel: BalancedChannel, method: str, ser: Any, deser: Any) -> None:
        self._channel = channel
        self._method = method
        self._ser = ser
        self._deser = deser

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> _UnaryCall:
        kwargs = {"metadata": metadata, "credentials": credentials, "compression": compression}
        return _UnaryCall(self._run(request, timeout, wait_for_ready, kwargs))

    async def _run(
        self, request: Any, timeout: float | None, wait_for_ready: bool | None, kw: dict[str, Any]
    ) -> Any:
        track = _Attempts(self._channel, self._method, timeout)
        balancer = self._channel._balancer
        code = _CANCELLED
        try:
            while True:
                sub = await track.pick(wait_for_ready)
                callable_ = sub.multicallable("unary_unary", self._method, self._ser, self._deser)
                try:
                    response = await callable_(
                        request, timeout=track.remaining(), wait_for_ready=False, **kw
                    )
                except grpc.aio.AioRpcError as exc:
                    code = exc.code()
                    balancer.done(sub, code)
                    if await track.may_retry(sub, code):
                        continue
                    raise
                except BaseException:
                    balancer.done(sub, _CANCELLED)
                    raise
                balancer.done(sub, _OK)
                code = _OK
                return response
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            raise
        finally:
            track.finish(code)


class _UnaryCall:
    """Awaitable result of a unary call (like ``grpc.aio.UnaryUnaryCall``)."""

    __slots__ = ("_coro",)

    def __init__(self, coro: Any) -> None:
        self._coro = coro

    def __await__(self) -> Iterator[Any]:
        return self._coro.__await__()  # type: ignore[no-any-return]


class StreamCallables:
    """Factories for the three streaming kinds."""

    @staticmethod
    def unary_stream(channel: BalancedChannel, method: str, ser: Any, deser: Any) -> Any:
        def call(request: Any, **kwargs: Any) -> _StreamCall:
            return _StreamCall(channel, "unary_stream", method, ser, deser, request, None, kwargs)

        return call

    @staticmethod
    def stream_stream(channel: BalancedChannel, method: str, ser: Any, deser: Any) -> Any:
        def call(request_iterator: Any = None, **kwargs: Any) -> _StreamCall:
            return _StreamCall(
                channel, "stream_stream", method, ser, deser, None, request_iterator, kwargs
            )

        return call

    @staticmethod
    def stream_unary(channel: BalancedChannel, method: str, ser: Any, deser: Any) -> Any:
        def call(request_iterator: Any = None, **kwargs: Any) -> _UnaryCall:
            stream = _StreamCall(
                channel, "stream_unary", method, ser, deser, None, request_iterator, kwargs
            )
            return _UnaryCall(stream._single())

        return call


class _CountingIterator:
    """Wraps a request iterator to know whether any request left for the server."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self.pulled = 0
        self._aiter: AsyncIterator[Any] | None = None

    def __aiter__(self) -> _CountingIterator:
        return self

    async def __anext__(self) -> Any:
        if self._aiter is None:
            if hasattr(self._source, "__aiter__"):
                self._aiter = self._source.__aiter__()
            else:
                self._aiter = _to_async(iter(self._source))
        item = await self._aiter.__anext__()
        self.pulled += 1
        return item


async def _to_async(iterator: Iterator[Any]) -> AsyncIterator[Any]:
    for item in iterator:
        yield item


class _StreamCall:
    """A streaming call: async-iterable and ``read()``-able, like grpc.aio's calls.

    Retries happen only before the first response message and, for client
    streaming, only while no request message was taken from the caller's
    iterator (a consumed iterator cannot be replayed).
    """

    def __init__(
        self,
        channel: BalancedChannel,
        kind: str,
        method: str,
        ser: Any,
        deser: Any,
        request: Any,
        request_iterator: Any,
        kwargs: dict[str, Any],
    ) -> None:
        self._channel = channel
        self._kind = kind
        self._method = method
        self._ser = ser
        self._deser = deser
        self._request = request
        self._requests = None if request_iterator is None else _CountingIterator(request_iterator)
        self._timeout: float | None = kwargs.pop("timeout", None)
        self._wait_for_ready: bool | None = kwargs.pop("wait_for_ready", None)
        self._kwargs = kwargs
        self._track: _Attempts | None = None
        self._sub: Subchannel | None = None
        self._call: Any = None
        self._received = 0
        self._committed = False  # a request was written: nothing can be replayed
        self._finished = False

    def __del__(self) -> None:
        # A caller that stops iterating without cancel() must not leak in_flight.
        if not self._finished:
            with contextlib.suppress(Exception):  # a finaliser must never raise
                self._end(_CANCELLED)

    # The grpc.aio call surface.
    def __aiter__(self) -> _StreamCall:
        return self

    async def __anext__(self) -> Any:
        message = await self.read()
        if message is grpc.aio.EOF:
            raise StopAsyncIteration
        return message

    async def read(self) -> Any:
        """Next response message, or ``grpc.aio.EOF`` at the end."""
        if self._finished:
            return grpc.aio.EOF
        try:
            while True:
                if self._call is None:
                    await self._start_attempt()
                try:
                    message = await self._call.read()
                except grpc.aio.AioRpcError as exc:
                    if await self._failed(exc):
                        continue
                    raise  # not reached: _failed raises
                if message is grpc.aio.EOF:
                    self._end(_OK)
                    return grpc.aio.EOF
                self._received += 1
                if self._sub is not None:  # progress, for silence detection
                    self._channel._balancer.answered(self._sub)
                return message
        except asyncio.CancelledError:
            self.cancel()
            raise

    async def write(self, request: Any) -> None:
        """Send one request (stream_stream/stream_unary without an iterator)."""
        if self._call is None:
            await self._start_attempt()
        self._committed = True
        await self._call.write(request)

    async def done_writing(self) -> None:
        if self._call is None:
            await self._start_attempt()
        await self._call.done_writing()

    def cancel(self) -> bool:
        cancelled = bool(self._call.cancel()) if self._call is not None else not self._finished
        self._end(_CANCELLED)
        return cancelled

    def done(self) -> bool:
        return self._finished

    def code(self) -> grpc.StatusCode | None:
        return self._track.code if self._finished and self._track else None

    async def initial_metadata(self) -> Any:
        if self._call is None:
            await self._start_attempt()
        return await self._call.initial_metadata()

    async def trailing_metadata(self) -> Any:
        return await self._call.trailing_metadata() if self._call is not None else None

    async def wait_for_connection(self) -> None:
        if self._call is None:
            await self._start_attempt()
        await self._call.wait_for_connection()

    # Attempts.
    async def _start_attempt(self) -> None:
        if self._track is None:
            self._track = _Attempts(self._channel, self._method, self._timeout)
        sub = await self._track.pick(self._wait_for_ready)
        self._sub = sub
        callable_ = sub.multicallable(self._kind, self._method, self._ser, self._deser)
        kwargs = {**self._kwargs, "timeout": self._track.remaining(), "wait_for_ready": False}
        if self._kind == "unary_stream":
            self._call = callable_(self._request, **kwargs)
        else:
            self._call = callable_(self._requests, **kwargs)

    async def _failed(self, exc: grpc.aio.AioRpcError) -> bool:
        """Account for a failed attempt; True to retry, else raise the right error."""
        track, sub, code = self._track, self._sub, exc.code()
        assert track is not None and sub is not None
        self._channel._balancer.done(sub, code)
        self._sub = None
        self._call = None
        pulled = self._requests.pulled if self._requests is not None else 0
        fresh = self._received == 0 and pulled == 0 and not self._committed
        if fresh and await track.may_retry(sub, code):
            return True
        self._finished = True
        track.finish(code)
        if self._received:
            raise StreamInterrupted(
                code,
                f"stream {self._method} failed after {self._received} message(s) from "
                f"{sub.key}; not retried, to avoid duplicate output: {exc.details()}",
            ) from exc
        raise exc

    def _end(self, code: grpc.StatusCode) -> None:
        if self._finished:
            return
        self._finished = True
        if self._sub is not None:
            self._channel._balancer.done(self._sub, code)
            self._sub = None
        if self._track is not None:
            self._track.finish(code)

    async def _single(self) -> Any:
        """stream_unary: await the one response, retrying like read() does."""
        try:
            while True:
                if self._call is None:
                    await self._start_attempt()
                try:
                    response = await self._call
                except grpc.aio.AioRpcError as exc:
                    if await self._failed(exc):
                        continue
                    raise  # not reached: _failed raises
                self._end(_OK)
                return response
        except asyncio.CancelledError:
            self.cancel()
            raise
