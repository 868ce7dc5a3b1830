"""The gateway's lifecycle and its uvicorn server with a drain on SIGTERM.

States (an explicit transition table, like :mod:`ecsgrpc.server`)::

    STARTING --lifespan up--> SERVING --SIGTERM--> DRAINING --drain_seconds-->
    STOPPING --in-flight done (<= grace_seconds)--> STOPPED

``/readyz`` answers 200 only in SERVING, so a load balancer stops sending new
requests at once, while requests that still arrive during the drain are
served. In STOPPING uvicorn stops accepting connections and waits for
in-flight requests and streams (up to ``grace_seconds``, then cancels them).
A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import gc
import logging
import signal
import socket
from collections.abc import Iterator
from types import FrameType

import uvicorn

from ecsgrpc.metrics import GatewayMetrics

__all__ = ["GatewayServer", "GatewayState", "Lifecycle", "can_transition"]

log = logging.getLogger(__name__)


class GatewayState(enum.Enum):
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"
    STOPPING = "stopping"
    STOPPED = "stopped"


_TRANSITIONS: dict[GatewayState, frozenset[GatewayState]] = {
    GatewayState.STARTING: frozenset({GatewayState.SERVING, GatewayState.STOPPING}),
    GatewayState.SERVING: frozenset({GatewayState.DRAINING, GatewayState.STOPPING}),
    GatewayState.DRAINING: frozenset({GatewayState.STOPPING}),
    GatewayState.STOPPING: frozenset({GatewayState.STOPPED}),
    GatewayState.STOPPED: frozenset(),
}


def can_transition(current: GatewayState, new: GatewayState) -> bool:
    return new in _TRANSITIONS[current]


class Lifecycle:
    """The current :class:`GatewayState`; moves only along the table. One event loop."""

    def __init__(self, metrics: GatewayMetrics | None = None) -> None:
        self._state = GatewayState.STARTING
        self._metrics = metrics

    @property
    def state(self) -> GatewayState:
        return self._state

    @property
    def serving(self) -> bool:
        return self._state is GatewayState.SERVING

    def move(self, new: GatewayState) -> bool:
        """Move to ``new``; False (and no change) when the table does not allow it."""
        if not can_transition(self._state, new):
            return False
        log.info("gateway %s -> %s", self._state.value, new.value)
        self._state = new
        if self._metrics is not None:
            self._metrics.draining.set(1 if new is GatewayState.DRAINING else 0)
        return True

    def stop(self) -> None:
        """Reach STOPPED from wherever we are (lifespan shutdown)."""
        self.move(GatewayState.STOPPING)
        self.move(GatewayState.STOPPED)


class GatewayServer(uvicorn.Server):
    """uvicorn's server, with SIGTERM/SIGINT starting a drain instead of stopping.

    ``exit_code`` is 0 after a complete drain, 1 when a second signal forced the stop.
    With ``install_signals=False`` (embedding, tests) call :meth:`request_shutdown`.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        lifecycle: Lifecycle,
        drain_seconds: float,
        install_signals: bool = True,
        freeze_gc: bool = False,
    ) -> None:
        super().__init__(config)
        self.freeze_gc = freeze_gc
        self.lifecycle = lifecycle
        self.install_signals = install_signals
        self.drain_seconds = drain_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._drain_requested = False
        self.exit_code = 0

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if not self.install_signals:
            yield
            return
        with super().capture_signals():
            yield

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.freeze_gc:
            # What exists after start (modules, the app, its routes) lives for the
            # process: keep it out of the collector's work, so full collections under
            # load stay short (they took up to 76 ms here before).
            gc.collect()
            gc.freeze()
        for address in self.addresses():
            log.info("gateway serving on http://%s", address)

    def addresses(self) -> list[str]:
        """``host:port`` of each listening socket (after startup)."""
        found = []
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                found.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return found

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Called by signal.signal in the main thread, between bytecodes: only
        # set flags here and hand the rest to the loop.
        if self._drain_requested:
            log.warning("second stop signal: stopping now")
            self.exit_code = 1
            self.force_exit = True
            self.should_exit = True
            return
        self._drain_requested = True
        log.info("received %s", signal.Signals(sig).name)
        if self._loop is None:
            self.should_exit = True
            return
        self._loop.call_soon_threadsafe(self.request_shutdown)

    def request_shutdown(self) -> None:
        """Begin the drain (readiness off at once); call on the server's loop."""
        self._drain_requested = True
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        self.lifecycle.move(GatewayState.DRAINING)
        log.info("draining for %.1fs before closing the listener", self.drain_seconds)
        if self.drain_seconds > 0:
            await asyncio.sleep(self.drain_seconds)
        self.lifecycle.move(GatewayState.STOPPING)
        self.should_exit = True
