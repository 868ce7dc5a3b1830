"""Scenario ``gateway_overload``: the API Gateway past its saturation point.

Three agent endpoints (:class:`AgentPool`: the reference servicer on plain
``grpc.aio`` servers in one process, so the agents' side costs less than the
gateway it measures), one ``ecsgrpc gateway`` process, and an open-loop HTTP load
(arrivals on a fixed schedule, latency counted from the scheduled time, so a
stalled gateway cannot slow the load down and hide its own latency). First a
closed-loop run measures the gateway's saturation ``S`` (JSON conversations
per second); then open loop at 0.5x, 1x, 1.5x and 2x ``S``; then the same
closed loop again (``params["after_steps"]``: its rate, CPU per 200 and the
other statuses it got), which says whether the gateway recovered. The judged
steps (1.5x and 2x) each have a closed loop right before them too
(``params["closed_loops_rps"]``), and a step's goodput target is 90 % of the
higher of the closed loops just before and just after it
(``params["target_base_rps"]``, :func:`target_bases`). Per step: goodput
(200s per second), p99 of the 200s (and of their send delays, the generator's
own lateness from the scheduled time to the write, part of that p99), answers
by status (503 with ``Retry-After``, refused at once, and the p99 of their
time from the write, ``refused_p99_ms``: at most :data:`REFUSAL_MS` at 1.5x
and 2x; 504; other: ``params["other_statuses"]``
names the others per step: an HTTP
status, 0 for a connection that failed, closed or gave no answer, -1 for a
request the load generator did not send because all its connections were
busy, ``503 without retry-after``), the gateway's RSS at the end of the step, its CPU per
conversation served (refusals included), how busy its core was, and how
busy the agents and the load generator kept theirs (``others_cpu_pct``, and
each apart: ``agents_cpu_pct``, ``loadgen_cpu_pct``; a note says when they were
full, and the step then measured the rig as much as the gateway).
Straight after 2x the load drops back to 0.5x: the row ``after 2x`` counts
what was sent from :data:`RECOVERY_SECONDS` after the drop (every answer a
200, p50 and p99 within 1.5x and 2x of the 0.5x step's, RSS within 10 %),
``params["recovery_first_seconds"]`` what the drop's first seconds got.

The load generator is a small raw HTTP/1.1 client (an asyncio protocol whose
answers go to callbacks) with keep-alive connections (a pool of up to
:data:`MAX_CONNECTIONS`). With two cores or more the gateway is pinned (every
thread, ``sched_setaffinity``) to the first core and the agents and the load
generator to the others, so the load it measures does not take the gateway's
core; the offered rate the generator reaches is reported next to the one
asked for. ``S`` is measured with the generator under Linux's normal policy;
during the open-loop steps its thread is under ``SCHED_BATCH``
(:func:`_generator_batched`: its wake-ups then stop preempting the agents it
shares a core with; its own delays stay in the latencies, counted from the
scheduled times), ``params["loadgen_policy"]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecsgrpc_apps.bench.agent_pool import AgentPool
from ecsgrpc_apps.bench.results import Metric, Row, ScenarioResult, check
from ecsgrpc_apps.bench.settings import Context

__all__ = ["GatewayProcess", "HttpLoad", "plot", "run"]

NAME = "gateway_overload"
GATEWAY_HOST = "127.0.0.30"
AGENT_HOSTS = ("127.0.0.41", "127.0.0.42", "127.0.0.43")
MAX_CONNECTIONS = 256
SATURATION_CLIENTS = 12
IDLE_REUSE = 2.0  # seconds; the gateway closes idle keep-alive connections after 5
STEPS = (0.5, 1.0, 1.5, 2.0)
# The steps with targets; each is bracketed by closed loops (see ``_targets``).
JUDGED = (1.5, 2.0)
# A refusal is "at once" when its answer comes within this of the request's write.
REFUSAL_MS = 5.0
# After the 2x step the load drops to 0.5x; latency and memory must be back to
# normal this long after the drop (the "after 2x" row counts what was sent later).
RECOVERY_SECONDS = 5.0
# A 503 without Retry-After is not the refusal the gateway promises: "other".
NO_RETRY_AFTER = "503 without retry-after"
COLUMNS = (
    "offered_rps",
    "goodput_rps",
    "p50_ms",
    "p99_ms",
    "send_delay_p99_ms",
    "ok",
    "refused_503",
    "refused_p99_ms",
    "timeout_504",
    "other",
    "rss_mb",
    "cpu_ms_per_ok",
    "gateway_cpu_pct",
    "others_cpu_pct",
    "agents_cpu_pct",
    "loadgen_cpu_pct",
)
# The agents' and load generator's cores this busy in a step: they, not only the
# gateway, limited what the step served.
OTHERS_SATURATED_PCT = 95.0
# The gateway's core at least this busy while S is measured: S is its saturation.
GATEWAY_SATURATED_PCT = 90.0
_SERVING = re.compile(r"gateway serving on http://(\S+)")
_BODY = json.dumps({"messages": [{"role": "user", "content": "one two three four"}]}).encode()


def _request(host: str) -> bytes:
    return (
        f"POST /v1/conversations HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(_BODY)}\r\n\r\n"
    ).encode() + _BODY


@dataclass
class Outcome:
    status: int
    latency: float
    #: From the scheduled time to the request's write: the generator's own
    #: lateness, part of ``latency``.
    send_delay: float = 0.0
    #: The answer had a ``Retry-After`` header.
    retry_after: bool = False
    #: The scheduled time (:func:`time.perf_counter`).
    started: float = 0.0

    @property
    def kind(self) -> int | str:
        """The status, or :data:`NO_RETRY_AFTER` for a 503 that does not say when to retry."""
        if self.status == 503 and not self.retry_after:
            return NO_RETRY_AFTER
        return self.status


# Who gets a connection's answer: the connection, its status (None: no answer,
# the request failed), whether the server said ``connection: close`` and whether
# the answer had a ``Retry-After`` header.
_Done = Callable[["_Connection", "int | None", bool, bool], None]


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of :class:`HttpLoad`, one request at a time.

    An answer is read whole however its bytes arrive; an answer that is not one
    (no status line, no content-length, bytes past its end) fails the request
    and drops the connection, and a connection the server closed is not reused.
    The answer goes to a callback (:meth:`send`), not to a future and a task:
    the open loop sends thousands a second from the agents' core, and each
    task it saves is CPU the agents keep.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.done: _Done | None = None
        self.closed = False
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def send(self, request: bytes, done: _Done) -> None:
        """Write ``request``; ``done`` gets its answer (or its failure) once."""
        assert self.transport is not None
        self.done = done
        self.transport.write(request)

    def _finish(self, status: int | None, close: bool, retry_after: bool = False) -> None:
        done, self.done = self.done, None
        if done is not None:
            done(self, status, close, retry_after)

    def data_received(self, data: bytes) -> None:
        if self.done is None:
            self.close()  # an answer nobody asked for: this connection is out of step
            return
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end])
        try:
            status, length = _status_and_length(head)
        except ValueError:
            self._finish(None, True)
            return
        total = end + 4 + length
        if len(self._buffer) < total:
            return
        if len(self._buffer) > total:  # bytes past the answer: out of step
            self._finish(None, True)
            return
        self._buffer.clear()
        lower = head.lower()
        self._finish(status, b"connection: close" in lower, b"\r\nretry-after:" in lower)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._finish(None, True)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


_LENGTH = re.compile(rb"content-length: *(\d+)", re.I)


def _status_and_length(head: bytes) -> tuple[int, int]:
    """An answer head's status and content-length; ValueError when it has none."""
    length = _LENGTH.search(head)
    if length is None:
        raise ValueError(f"an answer without content-length: {head[:80]!r}")
    parts = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP/1.x status line: {head[:80]!r}")
    return int(parts[1]), int(length.group(1))


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while inside, as it was after.

    The load generator's own pauses are counted as the gateway's latency (from
    the scheduled time) and stop its sending and reading: measured in a
    ``gateway_overload`` run with 30 s steps (2026-12-01), the generator's
    process made 4 full collections of 37-67 ms while the steps ran, and at
    2x a pause like that leaves every connection waiting (the ``-1`` status),
    while its cyclic garbage in the whole run was about 4,400 objects:
    reference counting frees the rest, so the pause costs no memory worth
    counting. The collector runs as usual between loops.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass
class HttpLoad:
    """Keep-alive HTTP/1.1 connections to ``host:port``, one request at a time each."""

    host: str
    port: int
    idle: list[tuple[_Connection, float]] = field(default_factory=list)
    open_count: int = 0
    _request: bytes = field(init=False, repr=False)
    _connecting: set[asyncio.Future[None]] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self._request = _request(self.host)

    def start(self, started: float, record: Callable[[Outcome], None]) -> None:
        """POST a conversation; ``record`` gets its status and latency from ``started``.

        ``started`` is a :func:`time.perf_counter` time. Never blocks: the
        request goes out on an idle kept-alive connection now, or on a new one
        once it is open (status 0 if it cannot be), or not at all (status -1)
        when :data:`MAX_CONNECTIONS` are all waiting on answers.
        """
        conn = self._idle_connection()
        if conn is not None:
            self._send(conn, started, record)
        elif self.open_count < MAX_CONNECTIONS:
            self.open_count += 1
            task = asyncio.ensure_future(self._connect(started, record))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)
        else:
            record(Outcome(-1, 0.0))  # the client's own limit: not sent

    async def one(self, started: float) -> Outcome:
        """POST a conversation; its status and latency from ``started`` (perf_counter)."""
        answer: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

        def record(outcome: Outcome) -> None:
            if not answer.done():  # not when the caller was cancelled meanwhile
                answer.set_result(outcome)

        self.start(started, record)
        return await answer

    def _idle_connection(self) -> _Connection | None:
        while self.idle and (
            self.idle[-1][1] < time.perf_counter() - IDLE_REUSE or self.idle[-1][0].closed
        ):
            self.idle.pop()[0].close()  # the gateway may have closed it (keep-alive timeout)
            self.open_count -= 1
        return self.idle.pop()[0] if self.idle else None

    async def _connect(self, started: float, record: Callable[[Outcome], None]) -> None:
        try:
            _, conn = await asyncio.get_running_loop().create_connection(
                _Connection, self.host, self.port
            )
        except OSError:
            self.open_count -= 1
            record(Outcome(0, time.perf_counter() - started))
            return
        self._send(conn, started, record)

    def _send(self, conn: _Connection, started: float, record: Callable[[Outcome], None]) -> None:
        delay = time.perf_counter() - started

        def done(conn: _Connection, status: int | None, close: bool, retry_after: bool) -> None:
            if status is None or close:
                conn.close()
                self.open_count -= 1
            else:
                self.idle.append((conn, time.perf_counter()))
            status = 0 if status is None else status
            latency = time.perf_counter() - started
            record(Outcome(status, latency, delay, retry_after, started))

        conn.send(self._request, done)

    async def closed_loop(self, concurrency: int, seconds: float) -> list[Outcome]:
        """``concurrency`` clients, each re-sending when answered (the collector paused)."""
        outcomes: list[Outcome] = []
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < stop:
                outcomes.append(await self.one(time.perf_counter()))

        with collector_paused():
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return outcomes

    async def open_loop(self, rate: float, seconds: float) -> tuple[list[Outcome], float]:
        """Arrivals every ``1/rate`` s for ``seconds``; the outcomes and the rate reached.

        Each arrival is sent when its time comes, whatever the answers to
        earlier ones (the generator sleeps at least a millisecond between
        rounds, so a few may go out together); outcomes still unanswered
        ``seconds + 5`` after the last arrival are left out. Python's cyclic
        collector is paused meanwhile (:func:`collector_paused`).
        """
        with collector_paused():
            return await self._open_loop(rate, seconds)

    async def _open_loop(self, rate: float, seconds: float) -> tuple[list[Outcome], float]:
        outcomes: list[Outcome] = []
        loop = asyncio.get_running_loop()
        answered = loop.create_future()
        waiting = 0
        all_sent = False

        def record(outcome: Outcome) -> None:
            nonlocal waiting
            outcomes.append(outcome)
            waiting -= 1
            if all_sent and waiting == 0 and not answered.done():
                answered.set_result(None)

        begin = time.perf_counter()
        sent = 0
        total = int(rate * seconds)
        while sent < total:
            now = time.perf_counter()
            while sent < total and begin + sent / rate <= now:
                waiting += 1
                self.start(begin + sent / rate, record)
                sent += 1
            if sent < total:
                # A millisecond at least: answers get read between rounds, and
                # uvloop's timers count whole milliseconds (a shorter sleep spins).
                await asyncio.sleep(max(begin + sent / rate - now, 0.001))
        reached = sent / max(time.perf_counter() - begin, 1e-9)
        all_sent = True
        if waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(answered), timeout=seconds + 5)
        return outcomes, reached

    def close(self) -> None:
        for conn, _ in self.idle:
            conn.close()
        self.idle.clear()


class GatewayProcess:
    """``ecsgrpc gateway`` on ``host`` over ``target``; its CPU and RSS from /proc."""

    def __init__(
        self,
        target: str,
        *,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
        host: str = GATEWAY_HOST,
    ):
        self._dir = Path(tempfile.mkdtemp(prefix="ecsgrpc-bench-gateway-"))
        self.log = self._dir / "gateway.log"
        self.python = python
        self.target = target
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = host
        self.port = 0

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    self.python,
                    "-m",
                    "ecsgrpc",
                    "gateway",
                    "--host",
                    self.host,
                    "--port",
                    "0",
                    "--target",
                    self.target,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "GATEWAY_ACCESS_LOG": "false", **self.env},
            )
        deadline = time.monotonic() + 60
        while not (match := _SERVING.search(self.log.read_text(errors="replace"))):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gateway did not start: {self.log.read_text()[-500:]}")
            time.sleep(0.05)
        self.port = int(match.group(1).rsplit(":", 1)[1])

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return process_cpu_seconds(self.proc.pid)

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def pin(pid: int, cores: set[int]) -> None:
    """Pin every thread of process ``pid`` to ``cores`` (threads that ended are skipped)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), cores)


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU of process ``pid`` (every thread); OSError once it is gone."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_or_zero(pid: int) -> float:
    try:
        return process_cpu_seconds(pid)
    except OSError:
        return 0.0


@dataclass
class OthersCpu:
    """How busy the agents and this process (the load generator) kept their cores.

    On a small machine they share the cores the gateway is not pinned to; when
    those are full, the agents answer late and the gateway waits on them: the
    step measured the rig as much as the gateway.
    """

    pids: list[int]
    cores: int
    _agents: float = 0.0
    _own: float = 0.0
    _wall: float = 0.0

    def _now(self) -> tuple[float, float]:
        return sum(_cpu_or_zero(pid) for pid in self.pids), time.process_time()

    def start(self) -> None:
        (self._agents, self._own), self._wall = self._now(), time.perf_counter()

    def split(self) -> tuple[float, float]:
        """The agents' and this process's CPU since :meth:`start`, as % of their cores' time."""
        wall = max(time.perf_counter() - self._wall, 1e-9)
        agents, own = self._now()
        scale = 100 / wall / max(1, self.cores)
        return (agents - self._agents) * scale, (own - self._own) * scale

    def pct(self) -> float:
        """Their CPU since :meth:`start`, as % of their cores' time."""
        return sum(self.split())


@contextlib.contextmanager
def _placement(gateway: GatewayProcess, agent_pids: list[int]) -> Iterator[list[int] | None]:
    """The gateway on the first core, agents and this process on the others (2+ cores)."""
    before = os.sched_getaffinity(0)
    cores = sorted(before)
    if len(cores) < 2 or gateway.proc is None:
        yield None
        return
    rest = set(cores[1:])
    pin(gateway.proc.pid, {cores[0]})
    for pid in agent_pids:
        pin(pid, rest)
    pin(os.getpid(), rest)
    try:
        yield [cores[0]]
    finally:
        pin(os.getpid(), before)


@contextlib.contextmanager
def _generator_batched() -> Iterator[str]:
    """This thread (the load generator's event loop) under ``SCHED_BATCH`` while inside.

    The generator shares the agents' core. Under the normal policy each of its
    wake-ups (an arrival's tick, an answer: thousands a second past
    saturation) preempts an agent thread; measured, the agents then spent
    0.82-0.85 ms of CPU per conversation at 1.5x and 2x instead of 0.67-0.71
    with the generator batched (2 rounds each, 8 s steps). Batched, it waits
    for its turn instead, so an arrival may go out a few milliseconds late:
    latency counts from the scheduled time, so that wait is in every
    reported latency; it cannot make one shorter. Yields the policy in
    force (``"normal"`` where Linux's batch policy is not available).
    """
    batch = getattr(os, "SCHED_BATCH", None)
    if batch is None or not hasattr(os, "sched_setscheduler"):
        yield "normal"
        return
    before = os.sched_getscheduler(0)
    try:
        os.sched_setscheduler(0, batch, os.sched_param(0))
    except OSError:
        yield "normal"
        return
    try:
        yield "batch"
    finally:
        os.sched_setscheduler(0, before, os.sched_param(0))


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def summarize(outcomes: list[Outcome], seconds: float, cpu: float) -> dict[str, Metric]:
    """A step's row: goodput and latency of the 200s, answers by status, CPU per 200.

    ``refused_503`` counts the 503s with ``Retry-After`` (a 503 without it is
    ``other``); ``refused_p99_ms`` is the p99 of their time from the request's
    write to the whole answer: the gateway's refusal, without the load
    generator's own lateness (which the 200s' latencies include); ``"none"``
    when nothing was refused.
    """
    codes = Counter(o.kind for o in outcomes)
    ok = [o.latency for o in outcomes if o.status == 200]
    refused = [o.latency - o.send_delay for o in outcomes if o.kind == 503]
    return {
        "goodput_rps": len(ok) / seconds,
        "p50_ms": _pct(ok, 0.5),
        "p99_ms": _pct(ok, 0.99),
        "send_delay_p99_ms": _pct([o.send_delay for o in outcomes if o.status == 200], 0.99),
        "ok": len(ok),
        "refused_503": codes[503],
        "refused_p99_ms": _pct(refused, 0.99) if refused else "none",
        "timeout_504": codes[504],
        "other": sum(n for code, n in codes.items() if code not in (200, 503, 504)),
        "cpu_ms_per_ok": cpu / len(ok) * 1000 if ok else None,
    }


def other_statuses(outcomes: list[Outcome]) -> dict[str, int]:
    """The answers that are not 200, 503 (with Retry-After) or 504, and how many of each.

    The ``other`` column: an HTTP status, ``0`` for a failed request, ``-1`` for
    one not sent, :data:`NO_RETRY_AFTER` for a 503 that did not say when to retry.
    """
    codes = Counter(str(o.kind) for o in outcomes if o.kind not in (200, 503, 504))
    return dict(sorted(codes.items()))


async def _saturation(
    load: HttpLoad, gateway: GatewayProcess, seconds: float
) -> tuple[float, float, dict[str, int]]:
    """Closed loop for ``seconds``: 200s per second, the gateway's CPU ms per 200, other statuses.

    Other statuses after the overload steps say the gateway had not recovered
    (its limit still low): they are reported, next to both values of ``S``.
    """
    cpu0 = gateway.cpu_seconds()
    outcomes = await load.closed_loop(SATURATION_CLIENTS, seconds)
    codes = Counter(str(o.kind) for o in outcomes)
    ok = codes.pop("200", 0)
    cpu_ms = (gateway.cpu_seconds() - cpu0) / max(1, ok) * 1000
    return ok / seconds, cpu_ms, dict(sorted(codes.items()))


async def _open_step(
    load: HttpLoad, gateway: GatewayProcess, others: OthersCpu, rate: float, seconds: float
) -> tuple[dict[str, Metric], dict[str, int]]:
    """One open-loop step at ``rate``: its row's metrics and its other statuses."""
    cpu0, wall0 = gateway.cpu_seconds(), time.perf_counter()
    others.start()
    outcomes, reached = await load.open_loop(rate, seconds)
    cpu = gateway.cpu_seconds() - cpu0
    metrics = summarize(outcomes, seconds, cpu)
    metrics["offered_rps"] = reached
    metrics["rss_mb"] = gateway.rss_mb()
    metrics["gateway_cpu_pct"] = cpu / (time.perf_counter() - wall0) * 100
    agents, loadgen = others.split()
    metrics["others_cpu_pct"] = agents + loadgen
    metrics["agents_cpu_pct"] = agents
    metrics["loadgen_cpu_pct"] = loadgen
    return metrics, other_statuses(outcomes)


@contextlib.asynccontextmanager
async def _gateway(target: str) -> AsyncIterator[GatewayProcess]:
    """The gateway process, started and stopped off the event loop (both wait)."""
    gateway = GatewayProcess(target)
    await asyncio.to_thread(gateway.start)
    try:
        yield gateway
    finally:
        await asyncio.to_thread(gateway.stop)


@dataclass
class _Rig:
    """What the steps run on: the load, the gateway, the CPU meters, the durations."""

    ctx: Context
    load: HttpLoad
    gateway: GatewayProcess
    others: OthersCpu
    seconds: float  # each open-loop step
    pause: float  # quiet before each closed loop and step
    closed_seconds: float  # each closed loop


async def _steps(rig: _Rig, saturation: float, result: ScenarioResult) -> dict[str, float]:
    """The open-loop steps at multiples of ``saturation`` (rows, series); the closed loops' rates.

    The judged steps (1.5x, 2x) are bracketed by closed loops: the one right
    before each and the one right after it (the next judged step's, or the one
    after the steps, which the caller runs), so each is judged against what the
    gateway served then, not minutes earlier (closed loops on this machine
    moved by up to 30 % within a run).
    """
    series: dict[str, list[Any]] = {"multiple": [], "offered": [], "goodput": [], "p99": []}
    closed = {"S": round(saturation, 1)}
    for multiple in STEPS:
        case = f"{multiple:g}x"
        if multiple in JUDGED:
            await asyncio.sleep(rig.pause)
            rig.ctx.progress(f"{NAME}: closed loop before {case}")
            bracket, _, _ = await _saturation(rig.load, rig.gateway, rig.closed_seconds)
            closed[f"before {case}"] = round(bracket, 1)
        rig.ctx.progress(f"{NAME}: {case} ({multiple * saturation:.0f}/s)")
        await asyncio.sleep(rig.pause)
        # The closed loops run with the generator under the normal policy, at its
        # quickest to re-send (the higher S: the stricter target); the steps batched.
        with _generator_batched() as policy:
            metrics, other = await _open_step(
                rig.load, rig.gateway, rig.others, multiple * saturation, rig.seconds
            )
        result.params["loadgen_policy"] = {"saturation": "normal", "steps": policy}
        if other:
            result.params.setdefault("other_statuses", {})[case] = other
        result.rows.append(Row("gateway", metrics, case=case))
        series["multiple"].append(multiple)
        series["offered"].append(metrics["offered_rps"])
        series["goodput"].append(metrics["goodput_rps"])
        series["p99"].append(metrics["p99_ms"])
    result.series = series
    await _recovery(rig, saturation, result)
    return closed


async def _recovery(rig: _Rig, saturation: float, result: ScenarioResult) -> None:
    """Straight after the last step, the load drops to 0.5x: is the gateway back to normal?

    Open loop at 0.5x ``S`` with no pause after 2x: first for
    :data:`RECOVERY_SECONDS` (``params["recovery_first_seconds"]``: what the
    drop's first seconds got), then for ``max(5, step / 4)`` seconds more, the
    row ``after 2x``: its latency, answers and the gateway's RSS, judged
    against the 0.5x step's (:func:`_targets`).
    """
    rate = STEPS[0] * saturation
    rig.ctx.progress(f"{NAME}: back to {STEPS[0]:g}x ({rate:.0f}/s) after {STEPS[-1]:g}x")
    with _generator_batched():
        first, other = await _open_step(rig.load, rig.gateway, rig.others, rate, RECOVERY_SECONDS)
        metrics, later = await _open_step(
            rig.load, rig.gateway, rig.others, rate, max(5.0, rig.seconds / 4)
        )
    result.params["recovery_first_seconds"] = {
        "seconds": RECOVERY_SECONDS,
        **{
            key: first[key]
            for key in ("goodput_rps", "p50_ms", "p99_ms", "refused_503", "timeout_504", "other")
        },
        "rss_mb": first["rss_mb"],
    }
    case = f"after {STEPS[-1]:g}x"
    for name, statuses in ((f"first {RECOVERY_SECONDS:g}s after", other), (case, later)):
        if statuses:
            result.params.setdefault("other_statuses", {})[name] = statuses
    result.rows.append(Row("gateway", metrics, case=case))


async def run(ctx: Context) -> ScenarioResult:
    seconds = 6.0 if ctx.settings.quick else 20.0
    seconds = max(1.0, seconds * ctx.settings.scale)
    pause = min(2.0, seconds)  # warm-up, and quiet between steps
    result = ScenarioResult(
        NAME,
        f"Gateway overload: open loop at {', '.join(f'{m:g}x' for m in STEPS)} of saturation, "
        f"{seconds:g}s each",
        COLUMNS,
        params={
            "step_seconds": seconds,
            "steps": list(STEPS),
            "agents": len(AGENT_HOSTS),
            "agents_in": "one process (AgentPool)",
        },
    )
    pool = AgentPool(AGENT_HOSTS)
    try:
        addresses = await asyncio.to_thread(pool.start)
        target = "static:///" + ",".join(addresses)
        async with _gateway(target) as gateway:
            with _placement(gateway, [pool.pid]) as gateway_cores:
                result.params["gateway_cores"] = gateway_cores
                others = OthersCpu(
                    [pool.pid],
                    len(os.sched_getaffinity(0)) if gateway_cores else os.cpu_count() or 1,
                )
                load = HttpLoad(gateway.host, gateway.port)
                ctx.progress(f"{NAME}: measuring saturation")
                await load.closed_loop(SATURATION_CLIENTS, pause)  # warm up
                # Closed loop below half the limiter's starting limit: the gateway's own
                # throughput, untouched by admission (a closed-loop client re-sends a
                # refused request at once, which measures refusals, not service).
                sat_seconds = max(1.0, seconds / 2)
                others.start()
                saturation, before_cpu, _ = await _saturation(load, gateway, sat_seconds)
                saturation_agents, saturation_loadgen = others.split()
                rig = _Rig(ctx, load, gateway, others, seconds, pause, sat_seconds)
                closed = await _steps(rig, saturation, result)
                # The same closed loop again after the steps: does the gateway serve as
                # before (its limit recovered), or refuse what it served then?
                await asyncio.sleep(pause)
                ctx.progress(f"{NAME}: measuring saturation again")
                after, after_cpu, after_not_ok = await _saturation(load, gateway, sat_seconds)
                closed["after the steps"] = round(after, 1)
                result.params["closed_loops_rps"] = closed
                load.close()
                result.params["saturation_rps"] = round(saturation, 1)
                result.params["saturation_cpu_ms_per_ok"] = round(before_cpu, 3)
                # ms per 200 x 200s per second: ms of the gateway's CPU per second.
                result.params["saturation_gateway_cpu_pct"] = round(before_cpu * saturation / 10, 1)
                result.params["saturation_others_cpu_pct"] = round(
                    saturation_agents + saturation_loadgen, 1
                )
                result.params["saturation_agents_cpu_pct"] = round(saturation_agents, 1)
                result.params["saturation_loadgen_cpu_pct"] = round(saturation_loadgen, 1)
                result.params["after_steps"] = {
                    "rps": round(after, 1),
                    "cpu_ms_per_ok": round(after_cpu, 3),
                    "not_200": after_not_ok,
                }
    finally:
        await asyncio.to_thread(pool.stop)
    _targets(result)
    _note_others(result)
    _note_saturation(result)
    _note_whole_run(result)
    return result


def _note_saturation(result: ScenarioResult) -> None:
    """Say when the closed loop that measured ``S`` left the gateway's core part idle."""
    busy = result.params.get("saturation_gateway_cpu_pct")
    if isinstance(busy, float) and busy < GATEWAY_SATURATED_PCT:
        result.notes.append(
            f"while S was measured the gateway's core was {busy:.0f} % busy: the closed "
            "loop's 12 clients waited on answers rather than on the gateway's CPU, so S "
            "understates what the gateway serves (the goodput target uses the higher of "
            "the closed loops before and after the steps)"
        )


def _note_whole_run(result: ScenarioResult) -> None:
    """The judged steps' goodput against the loops before and after the whole run too."""
    params = result.params
    loops = params.get("closed_loops_rps")
    if not loops:
        return
    whole = max(loops["S"], loops["after the steps"])
    judged = target_bases(params)
    goodput = [(r.case, r.metrics.get("goodput_rps")) for r in result.rows if r.case in judged]
    shares = ", ".join(
        f"{value / whole * 100:.0f} % at {case}"
        for case, value in goodput
        if isinstance(value, float)
    )
    result.notes.append(
        "closed loops (conversations/s): "
        + ", ".join(f"{name} {rps:,.0f}" for name, rps in loops.items())
        + f"; against the higher of S and the loop after the steps ({whole:,.0f}/s), "
        f"goodput was {shares}"
    )


def _by_case(result: ScenarioResult, metric: str) -> list[tuple[str, float]]:
    """``metric`` at saturation (``params["saturation_" + metric]``) and in each step."""
    pairs = [("saturation", result.params.get(f"saturation_{metric}"))]
    pairs += [(r.case, r.metrics.get(metric)) for r in result.rows]
    return [(case, pct) for case, pct in pairs if isinstance(pct, float)]


def _at(case: str) -> str:
    """``at 1.5x``, ``at saturation``; ``after 2x`` as it is."""
    return case if case.startswith("after ") else f"at {case}"


def _note_others(result: ScenarioResult) -> None:
    """Say when the agents' and load generator's cores were full (the rig, not the gateway)."""
    busy = {
        case: pct for case, pct in _by_case(result, "others_cpu_pct") if pct >= OTHERS_SATURATED_PCT
    }
    if not busy:
        return
    result.notes.append(
        "the agents and the load generator kept their cores "
        + ", ".join(f"{pct:.0f} % busy {_at(case)}" for case, pct in busy.items())
        + ": there the agents had no CPU to spare, the gateway's conversations waited on "
        "them, and saturation and goodput measure this machine as much as the gateway"
    )
    loadgen = _by_case(result, "loadgen_cpu_pct")
    if loadgen:
        result.notes.append(
            "of those cores' time the load generator took "
            + ", ".join(f"{pct:.0f} % {_at(case)}" for case, pct in loadgen)
            + ": it sends and reads every request, refused ones too, so past saturation "
            "it grows and takes CPU the agents had during the closed loop"
        )


def target_bases(params: dict[str, Any]) -> dict[str, float]:
    """Per judged step, the base of its goodput target: the higher closed loop around it.

    Each judged step is bracketed by the closed loop right before it and the
    one right after it (``params["closed_loops_rps"]``: the next judged step's,
    then the one after the steps). A result without them (older runs) has one
    base for every step: the higher of ``S`` and the loop after the steps.
    """
    loops = params.get("closed_loops_rps")
    cases = [f"{m:g}x" for m in JUDGED]
    if not loops:
        after = params.get("after_steps", {}).get("rps", 0.0)
        return dict.fromkeys(cases, max(params["saturation_rps"], after))
    around = [loops[f"before {case}"] for case in cases] + [loops["after the steps"]]
    return {case: max(around[i], around[i + 1]) for i, case in enumerate(cases)}


def _targets(result: ScenarioResult) -> None:
    """Goodput at 1.5x and 2x against 90 % of ``S``; p99 there against 2x the 0.5x step's.

    Refusals there answered within :data:`REFUSAL_MS` of their write (p99; a
    step that refused nothing has no such target). After 2x (the ``after 2x``
    row, sent from :data:`RECOVERY_SECONDS` after the load dropped to 0.5x):
    every answer a 200, p50 within 1.5x and p99 within 2x of the 0.5x step's,
    and the gateway's RSS within 10 % of what it was after the 0.5x step.

    ``S`` for a step's goodput target is the higher of the two closed loops
    around it (:func:`target_bases`, ``params["target_base_rps"]``): measured
    minutes apart, closed loops on this machine differed by up to 30 %, so a
    step is judged against what the gateway served just before and just after
    it; and a closed loop in a slow moment, or one that left the cores part
    idle, measures less than the gateway serves, so the higher of the two.
    """
    params = result.params
    bases = target_bases(params)
    params["target_base_rps"] = bases
    rows = {r.case: r.metrics for r in result.rows}
    base = rows.get("0.5x", {}).get("p99_ms")
    for case, saturation in bases.items():
        metrics = rows.get(case, {})
        result.targets.append(
            check(
                NAME,
                "gateway",
                "goodput_rps",
                metrics.get("goodput_rps"),
                ">=",
                0.9 * saturation,
                case=case,
                note="90% of saturation (the higher closed loop just before or after the step)",
            )
        )
        if isinstance(base, float):
            result.targets.append(
                check(
                    NAME,
                    "gateway",
                    "p99_ms",
                    metrics.get("p99_ms"),
                    "<=",
                    2 * base,
                    case=case,
                    note="2x the p99 at 0.5x",
                )
            )
        if metrics.get("refused_503"):
            result.targets.append(
                check(
                    NAME,
                    "gateway",
                    "refused_p99_ms",
                    metrics.get("refused_p99_ms"),
                    "<=",
                    REFUSAL_MS,
                    case=case,
                    note="refused at once: the 503's p99 from the request's write",
                )
            )
    _recovery_targets(result, rows)


def _recovery_targets(result: ScenarioResult, rows: dict[str, Any]) -> None:
    """The ``after 2x`` row against the 0.5x step (see :func:`_targets`)."""
    case = f"after {STEPS[-1]:g}x"
    after, normal = rows.get(case), rows.get(f"{STEPS[0]:g}x")
    if after is None or normal is None:
        return
    since = f"sent {RECOVERY_SECONDS:g}s or more after the load dropped to {STEPS[0]:g}x"
    failed = sum(
        n
        for n in (after.get("refused_503"), after.get("timeout_504"), after.get("other"))
        if isinstance(n, int)
    )
    result.targets.append(
        check(NAME, "gateway", "not_200", failed, "<=", 0, case=case, note=f"{since}: all 200")
    )
    for metric, factor in (("p50_ms", 1.5), ("p99_ms", 2.0), ("rss_mb", 1.1)):
        base = normal.get(metric)
        if isinstance(base, float):
            result.targets.append(
                check(
                    NAME,
                    "gateway",
                    metric,
                    after.get(metric),
                    "<=",
                    factor * base,
                    case=case,
                    note=f"{since}: {factor:g}x the {STEPS[0]:g}x step's",
                )
            )


def plot(plt: Any, scenario: dict[str, Any]) -> Any:
    """Goodput and p99 against the offered load."""
    series = scenario["series"]
    params = scenario["params"]
    bases = params.get("target_base_rps") or target_bases(params)
    if not isinstance(bases, dict):  # one base for every step (runs before 2026-12-01)
        bases = dict.fromkeys((f"{m:g}x" for m in JUDGED), bases)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(series["offered"], series["goodput"], marker="o", color="#1f77b4", label="goodput")
    left.plot(series["offered"], series["offered"], linestyle=":", color="#888", label="offered")
    judged = [
        (offered, 0.9 * bases[f"{multiple:g}x"])
        for multiple, offered in zip(series["multiple"], series["offered"], strict=True)
        if f"{multiple:g}x" in bases
    ]
    if judged:
        left.plot(
            [x for x, _ in judged],
            [y for _, y in judged],
            linestyle="none",
            marker="_",
            markersize=24,
            markeredgewidth=2,
            color="#d62728",
            label="target: 90% of saturation\n(closed loops around the step)",
        )
    after = next((r for r in scenario["rows"] if r.get("case") == f"after {STEPS[-1]:g}x"), None)
    _mark_after(left, after, "goodput_rps")
    left.margins(x=0.1)  # the targets' marks at the ends are wide
    left.set_xlabel("offered conversations/s")
    left.set_ylabel("served (200) conversations/s")
    left.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    p99 = [v if v is not None else float("nan") for v in series["p99"]]
    right.plot(series["offered"], p99, marker="o", color="#1f77b4", label="p99 of 200s")
    if p99 and p99[0] == p99[0]:
        right.axhline(2 * p99[0], color="#d62728", linestyle="--", label="target: 2x p99 at 0.5x")
    _mark_after(right, after, "p99_ms")
    right.set_xlabel("offered conversations/s")
    right.set_ylabel("ms")
    right.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    fig.suptitle("Gateway under overload (open loop)")
    fig.tight_layout()
    return fig


def _mark_after(axes: Any, after: dict[str, Any] | None, metric: str) -> None:
    """The ``after 2x`` row's ``metric`` as one point (runs before 2026-12-01 have no such row)."""
    if after is None or after.get(metric) is None:
        return
    axes.plot(
        [after["offered_rps"]],
        [after[metric]],
        linestyle="none",
        marker="x",
        markersize=9,
        color="#2ca02c",
        label=(
            f"after {STEPS[-1]:g}x (sent {RECOVERY_SECONDS:g} s or more\n"
            f"after the drop to {STEPS[0]:g}x)"
        ),
    )
