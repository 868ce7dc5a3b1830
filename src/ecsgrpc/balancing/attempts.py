"""One balanced call as a sequence of attempts: the state machine under the call API.

A call (``calls.py`` gives it grpc.aio's call API) is a sequence of
*attempts*, each a plain grpc.aio call on one endpoint's channel, picked by
the :class:`~ecsgrpc.balancing.router.Router`. This module holds what the
four call kinds share below their public surface:

* the states: NEW (created, nothing sent) -> RUNNING (an attempt, or the wait
  for one, is under way) -> DONE (status received, cancelled or failed);
  DONE is final and reached exactly once (:meth:`CallAttempts._finish`),
  which reports the current attempt's outcome and the call's metrics;
* the commit rule (gRFC A6): a call *commits* to its attempt as soon as the
  caller can observe anything of it (initial metadata received non-empty or
  read, a response message received, a request written beyond the replay
  buffer). A committed call is never retried;
* retries: an uncommitted call whose attempt fails is retried on another
  endpoint when the router says so; the messages written so far (the replay
  buffer, at most ``REPLAY_BUFFER_BYTES``, gRFC A6's per-call default) are
  sent again, and a half-close too;
* the drivers: the unary-response driver (attempts until one answers) and
  the request pump (the caller's request iterator through the write path).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import grpc
from grpc.aio import Metadata

from ecsgrpc.balancing.router import Router
from ecsgrpc.balancing.subchannel import Subchannel
from ecsgrpc.errors import StreamInterrupted

if TYPE_CHECKING:
    from collections.abc import Callable

    from ecsgrpc.telemetry.client import CallTrace

__all__ = [
    "DONE",
    "FINISHED",
    "INLINE",
    "ITERATOR_GIVEN",
    "LOCAL_CANCEL",
    "NEW",
    "REPLAY_BUFFER_BYTES",
    "RUNNING",
    "Attempt",
    "CallAttempts",
]

REPLAY_BUFFER_BYTES = 256 * 1024  # gRFC A6: grpc.per_rpc_retry_buffer_size

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED
LOCAL_CANCEL = "Locally cancelled by application!"  # grpc.aio's own words
FINISHED = "RPC already finished."
_HALF_CLOSED = "RPC is half closed after calling done_writing."
ITERATOR_GIVEN = "Please don't mix two styles of API for streaming requests"

NEW, RUNNING, DONE = 0, 1, 2
_NOTHING = object()
_monotonic = time.monotonic
INLINE = object()  # the driver marker: ``await call`` drives the attempts in the caller's task


class Attempt:
    """One attempt: a grpc.aio call on one endpoint. Reported to the router once.

    Made with ``Attempt()`` and its ``call`` and ``sub`` set at once (no
    ``__init__``: one Python call less per attempt); the rest are class defaults.
    """

    call: Any
    sub: Subchannel
    reported = False
    # Set by the first task that handles this attempt's failure; others wait on it.
    outcome: asyncio.Future[None] | None = None


def _size(message: Any) -> int | None:
    """Bytes a request takes in the replay buffer; None when unknown."""
    if isinstance(message, bytes | bytearray | memoryview):
        return len(message)
    byte_size = getattr(message, "ByteSize", None)
    return byte_size() if byte_size is not None else None


async def status_error(call: Any) -> grpc.aio.AioRpcError:
    """The finished grpc.aio ``call``'s status as an AioRpcError."""
    return grpc.aio.AioRpcError(
        await call.code(),
        await call.initial_metadata(),
        await call.trailing_metadata(),
        details=await call.details(),
    )


class CallAttempts:
    """What the four call kinds share: attempts, commit, retry, finish (exactly once).

    Subclasses set ``_kind`` (the grpc.aio multicallable kind), ``_unary_response``
    and ``_stream_request``. One event loop; not thread-safe.
    """

    _kind = ""
    _unary_response = False
    _stream_request = False

    # Per-call state. The defaults live on the class, so a call pays only for
    # what it changes (most calls: one attempt, no retry, no callback).
    _state = NEW
    _trace: CallTrace | None = None
    _att: Attempt | None = None
    _attempts = 0
    _tried: tuple[str, ...] = ()
    _committed = False
    _received = 0
    _buffer: list[Any] | None = None  # the replay buffer (request streaming only)
    _buffered = 0
    _half_closed = False
    _replacing: asyncio.Future[None] | None = None  # set while an attempt is being replaced
    _driver: Any = None  # unary responses: the task (or marker) awaiting attempts
    _pump: asyncio.Task[None] | None = None  # consumes the caller's request iterator
    _picking: asyncio.Task[Subchannel] | None = None  # waiting for an endpoint
    _cancelled = False
    _code: grpc.StatusCode | None = None
    _final: Any = None  # the attempt's grpc call that ended the call (status source)
    _error: BaseException | None = None  # what reads and awaits raise
    _status_error: grpc.aio.AioRpcError | None = None  # the status behind it
    _response: Any = _NOTHING
    _callbacks: list[Callable[[Any], None]] | None = None
    _done_future: asyncio.Future[None] | None = None
    # The call's options, when not given (None).
    _deadline: float | None = None
    _metadata: Any = None
    _iterator: Any = None
    _credentials: grpc.CallCredentials | None = None
    _wait_for_ready: bool | None = None
    _compression: grpc.Compression | None = None

    def __init__(
        self,
        router: Router,
        method: str,
        serializer: Any,
        deserializer: Any,
        request: Any,
        request_iterator: Any,
        timeout: float | None,
        metadata: Any,
        credentials: grpc.CallCredentials | None,
        wait_for_ready: bool | None,
        compression: grpc.Compression | None,
    ) -> None:
        self._router = router
        self._method = method
        telemetry = router.telemetry
        if telemetry is not None:  # OpenTelemetry: a span per call, an event per attempt
            active = telemetry.active
            # ClientTelemetry.call()'s fast "off" answer (nothing would record),
            # inlined: a call less on every call while OpenTelemetry is off.
            if (
                active._active
                or active._trace is None
                or active._trace._TRACER_PROVIDER is not None
                or active._metrics._METER_PROVIDER is not None
            ):
                self._trace = telemetry.call(method)
        self._serializer = serializer
        self._deserializer = deserializer
        self._request = request
        self._created = created = _monotonic()
        # The options default to None on the class: stored only when given.
        if timeout is not None:
            self._deadline = created + timeout
        if metadata is not None:
            self._metadata = metadata
        if request_iterator is not None:
            self._iterator = request_iterator
        if credentials is not None:
            self._credentials = credentials
        if wait_for_ready is not None:
            self._wait_for_ready = wait_for_ready
        if compression is not None:
            self._compression = compression
        if self._stream_request:
            self._buffer = []

    # Lifecycle.
    async def _current(self) -> Attempt | None:
        """The attempt in progress, starting the call if needed; None once finished."""
        if self._state == NEW:
            await self._begin(drive=self._unary_response)
        while self._replacing is not None:
            try:
                await asyncio.shield(self._replacing)
            except asyncio.CancelledError:  # the caller gave up: so does the call
                self._cancel(LOCAL_CANCEL)
                raise
        return None if self._state == DONE else self._att

    def _start(self) -> bool:
        """Mark the call started; True when its first attempt started at once (the
        per-call fast path: an endpoint is ready, nothing to wait for).
        Inlined in a unary call's ``__await__``: keep the two in step."""
        self._state = RUNNING
        if self._trace is not None:
            self._trace.start()
        sub = self._router.begin()
        if sub is None:
            return False
        self._attempts = 1
        self._launch(sub)
        return True

    async def _begin(self, *, drive: bool) -> None:
        """Start the call: first attempt, the request pump, the response driver."""
        if not self._start():
            await self._first_attempt()
        self._started(drive=drive)

    async def _first_attempt(self) -> None:
        """The first attempt when no endpoint was ready: wait for one (others wait too)."""
        self._replacing = ready = asyncio.get_running_loop().create_future()
        try:
            await self._next_attempt()
        except BaseException as exc:
            self._fail_without_attempt(exc)
        finally:
            self._replacing = None
            ready.set_result(None)

    def _started(self, *, drive: bool) -> None:
        if self._state == DONE:
            return
        if self._iterator is not None:
            self._pump = asyncio.get_running_loop().create_task(self._consume(self._iterator))
        if drive and self._driver is None:
            self._driver = asyncio.get_running_loop().create_task(self._drive_quietly())

    async def _next_attempt(self) -> None:
        """Pick an endpoint, start an attempt there, replay what was written."""
        self._attempts += 1
        router = self._router
        sub = router.pick_now(self._tried)
        if sub is None:
            # A task of its own, so that cancel() stops the wait at once.
            self._picking = picking = asyncio.get_running_loop().create_task(
                router.pick(self._tried, self._deadline, self._wait_for_ready)
            )
            try:
                sub = await picking
            except asyncio.CancelledError:
                if picking.done() and not picking.cancelled() and picking.exception() is None:
                    router.done(picking.result(), _CANCELLED)  # picked just before: give back
                else:
                    picking.cancel()
                task = asyncio.current_task()
                if self._state == DONE and not (task is not None and task.cancelling()):
                    return  # cancel() stopped the wait
                raise
            finally:
                self._picking = None
        if self._state == DONE:  # cancelled while waiting for an endpoint
            router.done(sub, _CANCELLED)
            return
        call = self._launch(sub).call
        if self._buffer:
            for message in self._buffer:
                try:
                    await call.write(message)
                except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    return  # this attempt failed: the next use of it will say so
        if self._half_closed and self._stream_request:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await call.done_writing()

    def _launch(self, sub: Subchannel) -> Attempt:
        """Start an attempt on ``sub`` (its in-flight count already taken)."""
        try:
            callable_ = sub.callables[self._kind, self._method]
        except KeyError:
            callable_ = sub.multicallable(
                self._kind, self._method, self._serializer, self._deserializer
            )
        metadata = self._metadata
        if self._trace is not None:
            metadata = self._trace.attempt(sub.key, sub.zone, metadata)
        router = self._router
        deadline = self._deadline
        if router.per_attempt_timeout is None:  # attempt_timeout()'s answer, one call less
            timeout = None if deadline is None else deadline - _monotonic()
        else:
            timeout = router.attempt_timeout(self._method, deadline, self._unary_response)
        call = callable_(
            None if self._stream_request else self._request,
            timeout=timeout,
            metadata=metadata,
            credentials=self._credentials,
            wait_for_ready=False,
            compression=self._compression,
        )
        self._att = att = Attempt()
        att.call = call
        att.sub = sub
        return att

    async def _failed(self, att: Attempt, error: grpc.aio.AioRpcError) -> None:
        """Attempt ``att`` failed with ``error``: return once another attempt is current,
        or raise the call's error when it is not retried."""
        if att.outcome is not None:  # another task handles (or handled) it
            try:
                await asyncio.shield(att.outcome)
            except asyncio.CancelledError:
                self._cancel(LOCAL_CANCEL)
                raise
        elif self._state != DONE and att is self._att:
            att.outcome = asyncio.get_running_loop().create_future()
            try:
                await self._retry_or_finish(att, error)
            finally:
                att.outcome.set_result(None)
        if self._state == DONE:
            self._raise_if_failed()
            raise asyncio.InvalidStateError(FINISHED)

    async def _retry_or_finish(self, att: Attempt, error: grpc.aio.AioRpcError) -> None:
        code = error.code()
        router = self._router
        att.reported = True
        router.done(att.sub, code)
        if self._trace is not None:
            self._trace.attempt_ended(code)
        if error.initial_metadata():  # the server's headers came: the caller may see them
            self._committed = True
        pause = None
        if not self._committed:
            pause = router.retry_pause(self._method, self._attempts, code, self._deadline)
        if pause is None:
            self._finish_failed(att, error)
            return
        if self._trace is not None:
            self._trace.retrying(code)
        self._replacing = replaced = asyncio.get_running_loop().create_future()
        try:
            if pause > 0:
                try:
                    await asyncio.sleep(pause)
                except asyncio.CancelledError:
                    self._cancel(LOCAL_CANCEL)
                    raise
            if self._state == DONE:
                return
            if self._committed:  # committed during the pause (a message was read)
                self._finish_failed(att, error)
                return
            self._tried = (*self._tried, att.sub.key)
            self._att = None
            try:
                await self._next_attempt()
            except BaseException as exc:
                self._fail_without_attempt(exc)
        finally:
            self._replacing = None
            replaced.set_result(None)

    async def _settle(self, att: Attempt) -> None:
        """Wait for attempt ``att`` to end and account for it (retrying if allowed)."""
        code = await att.call.code()
        if self._state == DONE or att is not self._att:
            return
        if code is _OK:
            if self._unary_response:
                await self._wait_done()  # the driver keeps the response
            else:
                self._finish(_OK, final=att.call)
            return
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            await self._failed(att, await status_error(att.call))

    def _commit(self) -> None:
        self._committed = True
        self._buffer = None

    def _remember(self, message: Any) -> None:
        """Keep a written request for replay, or commit when it does not fit."""
        buffer = self._buffer
        if buffer is None:
            return
        size = _size(message)
        if size is None or self._buffered + size > REPLAY_BUFFER_BYTES:
            self._commit()
            return
        self._buffered += size
        buffer.append(message)

    # Finishing (exactly once).
    def _finish(
        self,
        code: grpc.StatusCode,
        *,
        final: Any = None,
        error: BaseException | None = None,
        status: grpc.aio.AioRpcError | None = None,
    ) -> None:
        if self._state == DONE:
            return
        self._state = DONE
        self._code = code
        self._final = final
        self._error = error
        self._status_error = status
        att, self._att = self._att, None
        now = _monotonic()  # one clock read for the attempt's report and the call's duration
        if att is not None and not att.reported:
            att.reported = True
            self._router.done(att.sub, code)
            if code is not _OK and not att.call.done():
                att.call.cancel()
        self._buffer = None
        self._router.call_finished(self._method, code, now - self._created)
        if self._trace is not None:
            self._trace.finished(code, None if status is None else status.details())
        if self._pump is not None and code is not _OK:
            self._pump.cancel()
        if self._done_future is not None and not self._done_future.done():
            self._done_future.set_result(None)
        if self._callbacks:
            callbacks, self._callbacks = self._callbacks, None
            for callback in callbacks:
                callback(self)

    def _finish_failed(self, att: Attempt, error: grpc.aio.AioRpcError) -> None:
        raised: BaseException = error
        if self._received:
            raised = StreamInterrupted(
                error.code(),
                f"stream {self._method} failed after {self._received} message(s) from "
                f"{att.sub.key}; not retried, to avoid duplicate output: {error.details()}",
            )
            raised.__cause__ = error
        self._finish(error.code(), error=raised, status=error)

    def _fail_without_attempt(self, exc: BaseException) -> None:
        """No attempt could start (no endpoint in time, cancelled while waiting)."""
        if isinstance(exc, asyncio.CancelledError):
            self._cancel(LOCAL_CANCEL)
            raise exc
        if isinstance(exc, grpc.aio.AioRpcError):
            self._finish(exc.code(), error=exc, status=exc)
            return
        self._finish(grpc.StatusCode.UNKNOWN, error=exc)
        raise exc

    def _cancel(self, details: str) -> bool:
        if self._state == DONE:
            return False
        self._cancelled = True
        status = grpc.aio.AioRpcError(_CANCELLED, Metadata(), Metadata(), details=details)
        if self._state == NEW:
            self._state = RUNNING
            self._router.call_started()
        self._finish(_CANCELLED, error=asyncio.CancelledError(), status=status)
        driver = self._driver
        if isinstance(driver, asyncio.Task) and not driver.done():
            driver.cancel()
        if self._picking is not None:
            self._picking.cancel()
        return True

    def _raise_if_failed(self) -> None:
        if self._cancelled:
            raise asyncio.CancelledError
        if self._error is not None:
            raise self._error

    async def _wait_done(self) -> None:
        """Wait for the call to finish, driving it when nothing else does."""
        if self._state == NEW:
            await self._begin(drive=self._unary_response)
        if self._unary_response:
            if self._state != DONE:
                if self._done_future is None:
                    self._done_future = asyncio.get_running_loop().create_future()
                await asyncio.shield(self._done_future)
            return
        while self._state != DONE:
            att = await self._current()
            if att is not None:
                await self._settle(att)

    async def _final_initial_metadata(self) -> Metadata:
        if self._status_error is not None:
            return self._status_error.initial_metadata()
        if self._final is not None:
            return await self._final.initial_metadata()
        return Metadata()

    async def _write(self, request: Any) -> None:
        if self._state == DONE:
            if self._cancelled:
                raise asyncio.CancelledError
            raise asyncio.InvalidStateError(FINISHED)
        if self._half_closed:
            raise asyncio.InvalidStateError(_HALF_CLOSED)
        att = self._att
        if self._replacing is not None or att is None or self._state != RUNNING:
            att = await self._current()
        self._remember(request)
        while att is not None:
            try:
                await att.call.write(request)
                return
            except grpc.aio.AioRpcError as exc:
                error = exc
            except asyncio.InvalidStateError:
                error = await status_error(att.call)
            except asyncio.CancelledError:
                self._cancel(LOCAL_CANCEL)
                raise
            await self._failed(att, error)
            if self._buffer is not None:
                return  # the new attempt replayed it
            att = self._att
        self._raise_if_failed()
        raise asyncio.InvalidStateError(FINISHED)

    async def _done_writing(self) -> None:
        if self._state == DONE or self._half_closed:
            return
        self._half_closed = True
        att = await self._current()
        while att is not None:
            try:
                await att.call.done_writing()
                return
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await self._settle(att)
                if self._state == DONE:
                    return
                att = await self._current()  # a new attempt replayed the half-close

    async def _consume(self, requests: Any) -> None:
        """Send the caller's request iterator through the call's own write path."""
        try:
            if hasattr(requests, "__aiter__"):
                async for request in requests:
                    await self._write(request)
            else:
                for request in requests:
                    await self._write(request)
            await self._done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, asyncio.CancelledError):
            return  # the call ended; its status says why
        except Exception:  # the caller's iterator failed: cancel, as grpc.aio does
            self._cancel("request iterator raised")

    async def _drive(self, failed: tuple[Attempt, grpc.aio.AioRpcError] | None = None) -> Any:
        """Attempts until one answers, or the call fails for good. ``failed``: the
        call was started and its first attempt failed so (``__await__``'s fast path)."""
        if failed is not None:
            await self._failed(*failed)
        elif self._state == NEW:
            if not self._start():
                await self._first_attempt()
            if self._iterator is not None:
                self._started(drive=False)
        while True:
            att = self._att
            if self._replacing is not None or att is None or self._state == DONE:
                att = await self._current()
                if att is None:
                    self._raise_if_failed()
                    return self._response
            try:
                response = await att.call
            except grpc.aio.AioRpcError as exc:
                await self._failed(att, exc)
                continue
            except asyncio.CancelledError:
                self._cancel(LOCAL_CANCEL)
                raise
            if self._state != DONE:
                self._response = response
                self._finish(_OK, final=att.call)
            return response

    async def _drive_quietly(self) -> None:
        try:
            await self._drive()
        except Exception:  # noqa: S110 (kept for await and code(): never lost)
            pass
        except GeneratorExit:  # the task was destroyed unfinished: settle the call
            self._driver = None
            self._cancel(LOCAL_CANCEL)
            raise
