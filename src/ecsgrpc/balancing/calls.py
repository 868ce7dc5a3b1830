"""grpc.aio call objects over a balanced channel, with retries that are safe by construction.

The caller sees only the call: an instance of grpc.aio's abstract
``UnaryUnaryCall``, ``UnaryStreamCall``, ``StreamUnaryCall`` or
``StreamStreamCall`` with their whole API. Below that surface a call is a
sequence of attempts (:mod:`ecsgrpc.balancing.attempts`: the state machine,
the commit rule, retries and the replay buffer).

The commit rule (gRFC A6): a call *commits* to its attempt as soon as the
caller can observe anything of it: initial metadata received (non-empty) or
read with ``initial_metadata()``, a response message received, or a request
message written beyond the replay buffer. A committed call is never retried.
An uncommitted call whose attempt fails is retried on another endpoint when
the :class:`~ecsgrpc.balancing.router.Router` says so (the code shows the
request was not processed, attempts, deadline and budget remain); the
messages written so far (the replay buffer, at most ``REPLAY_BUFFER_BYTES``,
gRFC A6's per-call default) are sent again, and a half-close too.

Once a call has finished (status received, cancelled, failed) it is never
used again: reads return EOF (after OK) or raise the call's error
(``asyncio.CancelledError`` after ``cancel()``); writes raise
``asyncio.InvalidStateError``, as grpc.aio does.

A call starts when it is first used (awaited, iterated, or any method but
``cancel()``, ``cancelled()``, ``done()``, ``time_remaining()`` and
``add_done_callback()``); grpc.aio starts at creation. Its deadline runs from
creation. (A unary call made while an endpoint is ready is not one of these:
it is grpc.aio's own call, started at creation; see
:mod:`ecsgrpc.balancing.unary`, which hands a failed first attempt to a
``BalancedUnaryUnaryCall``.) A stream that fails after it yielded messages raises
:class:`~ecsgrpc.errors.StreamInterrupted` (an ``AioRpcError`` with the
original code); ``code()``, ``details()`` and the metadata are the attempt's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import grpc
from grpc.aio import Metadata
from grpc.aio import _call as grpc_call

from ecsgrpc.balancing.attempts import (
    DONE,
    INLINE,
    ITERATOR_GIVEN,
    LOCAL_CANCEL,
    NEW,
    REPLAY_BUFFER_BYTES,
    RUNNING,
    Attempt,
    CallAttempts,
)

__all__ = [
    "REPLAY_BUFFER_BYTES",
    "BalancedStreamStreamCall",
    "BalancedStreamUnaryCall",
    "BalancedUnaryStreamCall",
    "BalancedUnaryUnaryCall",
]

_OK = grpc.StatusCode.OK
_EOF = grpc.aio.EOF
# grpc.aio's per-message read under its response iterator, and the status check
# that iterator makes at the end: a stream reads its attempt with these (one
# generator layer less per message), or with the public read() where absent.
_RAW_READ = all(
    hasattr(grpc_call._StreamResponseMixin, name) for name in ("_read", "_raise_for_status")
)
_monotonic = time.monotonic
_UNARY_UNARY = "unary_unary"  # BalancedUnaryUnaryCall._kind
_READER, _ITERATOR = object(), object()
_API_STYLE_ERROR = "The iterator and read/write APIs may not be mixed on a single RPC."  # grpc's


class _BalancedCall(CallAttempts):
    """grpc.aio's call API over the attempts, for all four kinds."""

    # grpc.aio.RpcContext.
    def cancel(self) -> bool:
        """Cancel the call: True if it was not finished yet."""
        return self._cancel(LOCAL_CANCEL)

    def cancelled(self) -> bool:
        return self._cancelled

    def done(self) -> bool:
        return self._state == DONE

    _style: object = None  # how responses are read: _READER or _ITERATOR (grpc.aio's rule)

    def _set_style(self, style: object) -> None:
        """Responses are read one way per call, ``read()`` or ``async for``, as in grpc.aio."""
        if self._style is not None:
            raise grpc.aio.UsageError(_API_STYLE_ERROR)
        self._style = style

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(call)`` when the call finishes (at once if it has)."""
        if self._state == DONE:
            callback(self)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    # grpc.aio.Call.
    async def initial_metadata(self) -> Metadata:
        """The headers of the attempt the call commits to (reading them commits)."""
        while self._state != DONE:
            att = await self._current()
            if att is None:
                break
            metadata = await att.call.initial_metadata()
            if att is not self._att or self._state == DONE:
                continue
            if metadata or not att.call.done() or await att.call.code() is _OK:
                self._commit()
                return metadata
            # A trailers-only failure: nothing was sent before the status.
            await self._settle(att)
        return await self._final_initial_metadata()

    async def trailing_metadata(self) -> Metadata:
        await self._wait_done()
        if self._status_error is not None:
            return self._status_error.trailing_metadata()
        if self._final is not None:
            return await self._final.trailing_metadata()
        return Metadata()

    async def code(self) -> grpc.StatusCode:
        await self._wait_done()
        assert self._code is not None
        return self._code

    async def details(self) -> str:
        await self._wait_done()
        if self._status_error is not None:
            return self._status_error.details() or ""
        if self._final is not None:
            return await self._final.details()  # type: ignore[no-any-return]
        return ""

    async def debug_error_string(self) -> str:
        await self._wait_done()
        if self._status_error is not None:
            return self._status_error.debug_error_string() or ""
        return ""

    async def wait_for_connection(self) -> None:
        """Wait until the call's first attempt is under way (raises its error if it failed)."""
        while (att := await self._current()) is not None:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await att.call.wait_for_connection()
            if not att.call.done() or await att.call.code() is _OK:
                return
            await self._settle(att)  # it failed: retried, or the call fails
        self._raise_if_failed()

    # Request streaming (stream_unary, stream_stream).
    async def write(self, request: Any) -> None:
        """Send one request (only when the call was made without a request iterator)."""
        if self._iterator is not None:
            raise grpc.aio.UsageError(ITERATOR_GIVEN)
        await self._write(request)

    async def done_writing(self) -> None:
        """Half-close: no more requests. Idempotent; nothing after the call finished."""
        if self._iterator is not None:
            raise grpc.aio.UsageError(ITERATOR_GIVEN)
        await self._done_writing()

    # Unary responses (unary_unary, stream_unary).
    def __await__(self) -> Generator[Any, None, Any]:  # noqa: PLR0915 (inlined: per call)
        driving = False
        try:
            if self._state == NEW and self._driver is None:
                self._driver = INLINE
                driving = True
                if self._iterator is not None:
                    return (yield from self._drive().__await__())
                # self._start(), inlined (the per-call path): keep the two in step.
                self._state = RUNNING
                router = self._router
                if self._trace is not None:
                    self._trace.start()
                sub = router.begin()
                if sub is None:  # no endpoint ready: wait for one, then drive
                    yield from self._first_attempt().__await__()
                    return (yield from self._drive().__await__())
                self._attempts = 1
                # A unary request (not stream_unary written to), no trace: inline.
                plain = self._trace is None and not self._stream_request
                if plain and router.per_attempt_timeout is None:
                    # self._launch(sub), inlined (the per-call path): keep in step.
                    try:
                        callable_ = sub.callables[_UNARY_UNARY, self._method]
                    except KeyError:
                        callable_ = sub.multicallable(
                            _UNARY_UNARY, self._method, self._serializer, self._deserializer
                        )
                    deadline = self._deadline
                    call = callable_(
                        self._request,
                        timeout=None if deadline is None else deadline - _monotonic(),
                        metadata=self._metadata,
                        credentials=self._credentials,
                        wait_for_ready=False,
                        compression=self._compression,
                    )
                    self._att = att = Attempt()
                    att.call = call
                    att.sub = sub
                else:
                    att = self._launch(sub)
                    call = att.call
                # The per-call fast path (an endpoint was ready): _drive()'s first
                # round inline, without a coroutine of ours around grpc's.
                try:
                    response = yield from call.__await__()
                except grpc.aio.AioRpcError as exc:
                    return (yield from self._drive((att, exc)).__await__())
                except asyncio.CancelledError:
                    self._cancel(LOCAL_CANCEL)
                    raise
                if self._state != DONE:
                    self._response = response
                    if plain and self._done_future is None and self._callbacks is None:
                        # self._finish(_OK, final=call), inlined for a call that
                        # nothing else waits on (the per-call path): keep in step.
                        self._state = DONE
                        self._code = _OK
                        self._final = call
                        self._att = None
                        att.reported = True
                        router.finish_ok(sub, self._method, self._created)
                    else:
                        self._finish(_OK, final=call)
                return response
            if self._state != DONE:
                if isinstance(self._driver, asyncio.Task):
                    try:
                        yield from self._driver
                    except asyncio.CancelledError:
                        self._cancel(LOCAL_CANCEL)
                        raise
                else:
                    yield from self._wait_done().__await__()
            self._raise_if_failed()
            return self._response
        except GeneratorExit:
            # The coroutine awaiting the call was closed (coroutine.close(), or
            # collected unfinished) while it drove the call: nothing will drive
            # it now, so it is cancelled and its endpoint's count settled. (A
            # unary call has no finaliser: this is its one way to be dropped.)
            if driving:
                self._cancel(LOCAL_CANCEL)
            raise

    # Response streaming (unary_stream, stream_stream).
    async def read(self) -> Any:
        """The next response, ``grpc.aio.EOF`` at the end; raises the call's error."""
        if self._state == DONE:
            self._raise_if_failed()
            return _EOF
        if self._style is not _READER:
            self._set_style(_READER)
        while True:
            att = self._att
            if self._replacing is not None or att is None or self._state == DONE:
                att = await self._current()
                if att is None:
                    self._raise_if_failed()
                    return _EOF
            try:
                message = await att.call.read()
            except grpc.aio.AioRpcError as exc:
                await self._failed(att, exc)
                continue
            except asyncio.CancelledError:
                self._cancel(LOCAL_CANCEL)
                raise
            if message is _EOF:
                if att is self._att:
                    self._finish(_OK, final=att.call)
                self._raise_if_failed()
                return _EOF
            self._commit()
            self._received += 1
            sub = att.sub  # progress, for silence detection (Balancer.answered, inlined)
            sub.silence.answers += 1
            if sub.stalled:
                sub.set_stalled(False)
            return message

    async def _messages(self) -> AsyncIterator[Any]:
        # The common case (one attempt, no retry in progress) reads the attempt
        # with grpc.aio's own per-message read, the one under its async iterator
        # (``_read``, then ``_raise_for_status`` at the end, as that iterator
        # does): per message, one generator step of ours where grpc's iterator
        # would add its own. Public ``read()`` when a grpc.aio lacks them. Like
        # grpc.aio, do not mix iteration with read().
        if self._style is not _ITERATOR:
            self._set_style(_ITERATOR)
        while True:
            att = self._att
            if self._replacing is not None or att is None or self._state != RUNNING:
                if self._state == NEW:  # self._begin(drive=False), inlined
                    if not self._start():
                        await self._first_attempt()
                    if self._iterator is not None:
                        self._started(drive=False)
                    att = self._att
                if self._replacing is not None or att is None or self._state != RUNNING:
                    att = await self._current()
                    if att is None:
                        self._raise_if_failed()
                        return
            sub = att.sub
            silence = sub.silence
            call = att.call
            read = call._read if _RAW_READ else call.read
            try:
                message = await read()
                while message is not _EOF:
                    if not self._committed:
                        self._committed = True  # self._commit(), inlined
                        self._buffer = None
                    self._received += 1
                    # Progress, for silence detection: Balancer.answered, inlined
                    # (a count; the balancer's periodic check stamps it, stall.py).
                    silence.answers += 1
                    if sub.stalled:
                        sub.set_stalled(False)
                    yield message
                    message = await read()
                if _RAW_READ:  # at the end, grpc's iterator raises the status that is not OK
                    await call._raise_for_status()
            except grpc.aio.AioRpcError as exc:
                await self._failed(att, exc)
                continue
            except asyncio.CancelledError:
                self._cancel(LOCAL_CANCEL)
                raise
            if att is self._att:
                self._finish(_OK, final=call)
            if self._cancelled or self._error is not None:
                self._raise_if_failed()
            return

    # ``async for``: the generator itself (no method of ours around its creation).
    __aiter__ = _messages


class _Finalised(_BalancedCall):
    """A call the caller can drop part way (a stream it stopped iterating, requests
    written and never awaited): its finaliser settles the endpoint's in-flight
    count. A unary call needs none: it runs only while awaited (see ``__await__``)
    or driven by a task of its own, and saves the finaliser's call."""

    def __del__(self) -> None:
        if self._state == RUNNING:
            with contextlib.suppress(Exception):  # a finaliser must never raise
                self._cancel(LOCAL_CANCEL)


class BalancedUnaryUnaryCall(_BalancedCall, grpc.aio.UnaryUnaryCall):  # type: ignore[misc]
    """A unary call: await it for the response."""

    _kind = "unary_unary"
    _unary_response = True


class BalancedUnaryStreamCall(_Finalised, grpc.aio.UnaryStreamCall):  # type: ignore[misc]
    """A server-streaming call: iterate it or ``read()`` it."""

    _kind = "unary_stream"


class BalancedStreamUnaryCall(_Finalised, grpc.aio.StreamUnaryCall):  # type: ignore[misc]
    """A client-streaming call: ``write()``/``done_writing()`` (or an iterator), then await."""

    _kind = "stream_unary"
    _unary_response = True
    _stream_request = True


class BalancedStreamStreamCall(_Finalised, grpc.aio.StreamStreamCall):  # type: ignore[misc]
    """A bidirectional call: write and read, in any interleaving."""

    _kind = "stream_stream"
    _stream_request = True
