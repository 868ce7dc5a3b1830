"""A unary call that is grpc.aio's own call object, on the endpoint picked for it.

The per-call path of the commonest call (unary request, unary response, an
endpoint ready, no interceptor, OpenTelemetry off, no per-attempt timeout):
instead of a call object of ours around an attempt's grpc.aio call (two call
objects, two awaits), the call *is* grpc.aio's ``UnaryUnaryCall``, made on the
picked endpoint's channel as grpc.aio's multicallable makes one (the
balanced ``UnaryUnaryMultiCallable`` in :mod:`ecsgrpc.balancing.callables`),
with its invocation (``_invoke``) replaced by one that also reports the
attempt to the router. So a call that succeeds at once costs what a plain
grpc.aio call costs, plus the pick and its report (docs/benchmarks.md,
"Per-call cost"). Like grpc.aio's, and unlike the general path's, it starts
when it is created and runs in a task of its own.

When the first attempt fails, the call hands the rest of its life to a
:class:`~ecsgrpc.balancing.calls.BalancedUnaryUnaryCall` (*the successor*),
started as if it had made that attempt: it reports the attempt and applies the
commit rule, the retry decision and any further attempts, as for every other
call. From then on the call's API (``code()``, ``details()``, the metadata,
``cancel()``, ``done()``, done callbacks) answers from the successor. The
status methods wait for the call's end, not the first attempt's; done
callbacks run once, when the call ends.

It relies on grpc.aio's call internals (``_invoke``, ``_cython_call``,
``_call_response``); :data:`AVAILABLE` is False where a grpc release lacks
them, and every unary call then takes the general path.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import grpc
from grpc.aio import Metadata

from ecsgrpc.balancing.attempts import LOCAL_CANCEL, RUNNING, Attempt
from ecsgrpc.balancing.calls import BalancedUnaryUnaryCall

try:  # grpc.aio's internals this call is built from (see AVAILABLE)
    from grpc import _common as grpc_common
    from grpc._cython import cygrpc
    from grpc.aio import _call as grpc_call
    from grpc.aio import _channel as grpc_channel

    _Base: Any = grpc_call.UnaryUnaryCall
    init_metadata: Any = grpc_channel._BaseMultiCallable._init_metadata
    _create_rpc_error = grpc_call._create_rpc_error
    _EOF = cygrpc.EOF
    AVAILABLE = all(
        hasattr(grpc_call.UnaryUnaryCall, name)
        for name in ("_invoke", "_raise_for_status", "__await__")
    ) and all(
        hasattr(cygrpc._AioCall, name)
        for name in ("unary_unary", "is_ok", "add_done_callback", "_status", "_initial_metadata")
    )
except (ImportError, AttributeError):  # pragma: no cover (a grpc without them)
    _Base = grpc.aio.UnaryUnaryCall
    init_metadata = None
    AVAILABLE = False

if TYPE_CHECKING:
    from ecsgrpc.balancing.router import Router
    from ecsgrpc.balancing.subchannel import Subchannel

__all__ = ["AVAILABLE", "NativeUnaryUnaryCall", "init_metadata"]

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED
_monotonic = time.monotonic


class _PerCall:
    """The attributes set on every call (by the multicallable): slots, not the
    instance dict that grpc.aio's attributes fill (no dict growth per call)."""

    __slots__ = ("_created", "_name", "_router", "_sub")


class NativeUnaryUnaryCall(_Base, _PerCall):  # type: ignore[misc]
    """grpc.aio's ``UnaryUnaryCall`` whose attempts the router balances (see the module).

    Its rare attributes are class defaults, overridden in the instance dict when
    they happen."""

    _router: Router
    _sub: Subchannel
    _name: str
    _created: float
    _options: tuple[grpc.CallCredentials | None, bool | None] = (None, None)
    _successor: BalancedUnaryUnaryCall | None = None
    _committed = False  # initial_metadata() was read: never retried
    _local_cancel = False  # cancel() ended it (perhaps after its attempt's status came)
    _pending: list[Any] | None = None  # done callbacks waiting for the retry decision
    _decided: asyncio.Future[None] | None = None  # set when the first attempt's end is settled

    async def _invoke(self) -> Any:
        # grpc.aio's UnaryUnaryCall._invoke, with the attempt's report.
        cy = self._cython_call
        try:
            serialized_response = await cy.unary_unary(
                grpc_common.serialize(self._request, self._request_serializer),
                self._metadata,
                self._context,
            )
        except asyncio.CancelledError:
            return self._ended_cancelled()
        except BaseException:  # the request did not serialize, or grpc failed locally
            self._end_without_successor(grpc.StatusCode.INTERNAL)
            raise
        if cy.is_ok():
            self._router.finish_ok(self._sub, self._name, self._created)
            return grpc_common.deserialize(serialized_response, self._response_deserializer)
        if self._local_cancel or cy.is_locally_cancelled():
            return self._ended_cancelled()
        return await self._failed()

    def _ended_cancelled(self) -> Any:
        """The invocation was cancelled (cancel(), or the awaiting task was)."""
        self._local_cancel = True
        cy = self._cython_call
        if not cy.done():
            cy.cancel(LOCAL_CANCEL)
        self._end_without_successor(_CANCELLED)
        return _EOF

    def _end_without_successor(self, code: grpc.StatusCode) -> None:
        router = self._router
        router.done(self._sub, code)
        router.call_finished(self._name, code, _monotonic() - self._created)
        self._settled()
        pending, self._pending = self._pending, None
        for callback in pending or ():
            callback(self)

    def _settled(self) -> None:
        if self._decided is not None and not self._decided.done():
            self._decided.set_result(None)

    async def _failed(self) -> Any:
        """The first attempt failed: a successor call takes over (retry or not)."""
        cy = self._cython_call
        error = _create_rpc_error(cy._initial_metadata, cy._status)
        credentials, wait_for_ready = self._options
        remaining = cy.time_remaining()
        successor = BalancedUnaryUnaryCall(
            self._router,
            self._name,
            self._request_serializer,
            self._response_deserializer,
            self._request,
            None,
            None,
            self._metadata,
            credentials,
            wait_for_ready,
            None,  # compression: already in the metadata (grpc.aio's _init_metadata)
        )
        # Started, its first attempt (this one) under way on our endpoint.
        successor._state = RUNNING
        successor._attempts = 1
        successor._created = self._created
        if remaining is not None:
            successor._deadline = _monotonic() + remaining
        successor._committed = self._committed
        successor._driver = self._call_response  # its cancel() stops this task's waits
        att = Attempt()
        att.call = None  # reported by _failed below; never read again
        att.sub = self._sub
        successor._att = att
        self._successor = successor
        pending, self._pending = self._pending, None
        for callback in pending or ():
            successor.add_done_callback(partial(_relay, callback, self))
        self._settled()
        try:
            return await successor._drive((att, error))
        except asyncio.CancelledError:
            successor.cancel()
            return _EOF
        except Exception:  # the successor keeps it: __await__ raises it
            return _EOF

    # grpc.aio's call API, where the successor answers after a failed first attempt.
    def __await__(self) -> Any:
        try:
            response = yield from self._call_response
        except asyncio.CancelledError:
            if not self.cancelled():
                self.cancel()
            raise
        if response is _EOF:
            self._raise_now()
        return response

    def _raise_now(self) -> None:
        successor = self._successor
        if successor is not None:
            successor._raise_if_failed()
            raise asyncio.InvalidStateError("RPC already finished.")  # pragma: no cover
        if self._local_cancel or self._cython_call.is_locally_cancelled():
            raise asyncio.CancelledError
        raise _create_rpc_error(self._cython_call._initial_metadata, self._cython_call._status)

    async def _raise_for_status(self) -> None:
        await self._wait_call()
        successor = self._successor
        if successor is not None:
            await successor._wait_done()
            successor._raise_if_failed()
        elif self._local_cancel:
            raise asyncio.CancelledError
        else:
            await super()._raise_for_status()

    async def _wait_settled(self) -> None:
        """Until the first attempt's end is settled: succeeded, or a successor took
        over, or the call ended (a failed attempt's status alone says neither)."""
        cy = self._cython_call
        if self._successor is not None or not cy.done() or cy.is_ok():
            return
        task = self._call_response
        if task.done():
            return
        if self._decided is None:
            self._decided = task.get_loop().create_future()
        await asyncio.wait((self._decided, task), return_when=asyncio.FIRST_COMPLETED)

    def cancel(self) -> bool:
        successor = self._successor
        if successor is not None:
            return successor.cancel()
        task = self._call_response
        if task.done() or self._local_cancel:
            return False
        self._local_cancel = True
        cy = self._cython_call
        if cy.done():  # its status came, the retry decision not yet: stop that
            task.cancel()
        else:  # the invocation ends as cancelled (and reports it)
            cy.cancel(LOCAL_CANCEL)
        return True

    def cancelled(self) -> bool:
        successor = self._successor
        if successor is not None:
            return successor.cancelled()
        return self._local_cancel or self._cython_call.cancelled()

    def done(self) -> bool:
        successor = self._successor
        if successor is not None:
            return successor.done()
        cy = self._cython_call
        return bool(cy.done() and (cy.is_ok() or self._call_response.done()))

    def add_done_callback(self, callback: Any) -> None:
        successor = self._successor
        if successor is not None:
            successor.add_done_callback(partial(_relay, callback, self))
            return
        cy = self._cython_call
        if cy.done() and not cy.is_ok() and not self._call_response.done():
            self._pend(callback)  # failed: the retry decision is not made yet
            return
        cy.add_done_callback(partial(self._attempt_done, callback))

    def _pend(self, callback: Any) -> None:
        if self._pending is None:
            self._pending = [callback]
        else:
            self._pending.append(callback)

    def _attempt_done(self, callback: Any) -> None:
        """The first attempt ended: the call too if it succeeded, else decided later."""
        if self._cython_call.is_ok():
            callback(self)
        elif self._successor is not None:
            self._successor.add_done_callback(partial(_relay, callback, self))
        elif self._call_response.done():
            callback(self)
        else:
            self._pend(callback)

    async def initial_metadata(self) -> Metadata:
        """The headers of the attempt the call commits to (reading them commits)."""
        if self._successor is None:
            cy = self._cython_call
            raw = await cy.initial_metadata()
            if self._successor is None:
                if raw or not cy.done() or cy.is_ok():
                    self._committed = True
                    return Metadata.from_tuple(raw)
                await self._wait_settled()  # a trailers-only failure: retried?
        successor = self._successor
        if successor is not None:
            return await successor.initial_metadata()
        return Metadata.from_tuple(self._cython_call._initial_metadata or ())

    async def _wait_call(self) -> None:
        """Until the call ended (its invocation, every attempt of it, is over)."""
        task = self._call_response
        if not task.done():
            await asyncio.wait((task,))

    async def trailing_metadata(self) -> Metadata:
        await self._wait_call()
        if self._successor is not None:
            return await self._successor.trailing_metadata()
        return await super().trailing_metadata()

    async def code(self) -> grpc.StatusCode:
        await self._wait_call()
        if self._successor is not None:
            return await self._successor.code()
        if self._local_cancel:
            return _CANCELLED
        return await super().code()

    async def details(self) -> str:
        await self._wait_call()
        if self._successor is not None:
            return await self._successor.details()
        if self._local_cancel:
            return LOCAL_CANCEL
        return await super().details()  # type: ignore[no-any-return]

    async def debug_error_string(self) -> str:
        await self._wait_call()
        if self._successor is not None:
            return await self._successor.debug_error_string()
        return await super().debug_error_string()  # type: ignore[no-any-return]

    async def wait_for_connection(self) -> None:
        # grpc.aio's unary wait_for_connection: the invocation, then its status.
        await self._wait_call()
        if self.done():
            await self._raise_for_status()


def _relay(callback: Any, call: NativeUnaryUnaryCall, _successor: Any) -> None:
    callback(call)
