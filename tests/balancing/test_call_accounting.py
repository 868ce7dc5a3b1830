"""Property: whatever callers do, every endpoint's in-flight count and the gauge return to 0.

Hypothesis drives random batches of the four call kinds (server answers,
errors, deadlines, headers then failure, cut streams), caller actions (await,
iterate, read headers first, cancel early or late, abandon mid-stream, never
use) and SIGKILLs of real server processes (restarted on the same port), all
concurrently over a BalancedChannel. Afterwards every call is done and no
endpoint counts a call in flight.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from ecsgrpc.balancing.channel import connect
from tests.support import call_service as svc

HOSTS = ("127.0.11.4", "127.0.11.5", "127.0.11.6")
KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
METHODS = {
    "unary_unary": svc.UNARY,
    "unary_stream": svc.SERVER_STREAM,
    "stream_unary": svc.CLIENT_STREAM,
    "stream_stream": svc.BIDI,
}
BEHAVIOURS = (
    b"ok",
    b"unavailable",
    b"internal",
    b"headers-unavailable",
    b"sleep:0.05",
    b"sleep:2",  # outlives a short deadline, or gets cancelled
    b"n:3",
    b"after:1:unavailable",
)
ACTIONS = ("finish", "headers_first", "cancel_now", "cancel_later", "abandon", "unused")


@dataclass
class Servers:
    procs: list[subprocess.Popen[str]]
    ports: list[int]
    # Kills and restarts run in threads; two kills of one server in a batch
    # must not both start a replacement (grpc binds with SO_REUSEPORT, so both
    # would start, and the first would outlive the test).
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, i: int, port: int = 0) -> None:
        with self.lock:
            self._start(i, port)

    def _start(self, i: int, port: int) -> None:
        if i < len(self.procs) and self.procs[i].poll() is None:
            return  # already running (restarted by another kill of the same server)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.call_service", HOSTS[i], str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip():
            proc.kill()
            raise RuntimeError(f"call server on {HOSTS[i]}:{port} did not start")
        if i < len(self.procs):
            self.procs[i] = proc
            self.ports[i] = int(line)
        else:
            self.procs.append(proc)
            self.ports.append(int(line))

    def kill(self, i: int) -> None:
        with self.lock:
            self.procs[i].send_signal(signal.SIGKILL)
            self.procs[i].wait(5)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    fleet = Servers([], [])
    try:
        for i in range(len(HOSTS)):
            fleet.start(i)
        yield fleet
    finally:
        fleet.stop()


call_ops = st.tuples(
    st.sampled_from(KINDS),
    st.sampled_from(BEHAVIOURS),
    st.sampled_from(ACTIONS),
    st.sampled_from((None, 0.3, 5.0)),  # timeout
    st.integers(min_value=0, max_value=3),  # delay (x 20 ms) before acting
)
kill_ops = st.tuples(st.just("kill"), st.integers(min_value=0, max_value=2), st.integers(0, 5))
batches = st.lists(st.one_of(call_ops, call_ops, call_ops, kill_ops), min_size=1, max_size=12)


async def _drive(
    channel: Any, kind: str, behaviour: bytes, action: str, timeout: Any, delay: int
) -> Any:
    multicallable = getattr(channel, kind)(METHODS[kind])
    if kind.startswith("unary"):
        call = multicallable(behaviour, timeout=timeout)
    elif action == "finish" and delay % 2:
        call = multicallable(iter([behaviour, b"ok"]), timeout=timeout)
    else:
        call = multicallable(timeout=timeout)
    if action == "unused":
        return None
    await asyncio.sleep(delay * 0.02)
    if action == "cancel_now":
        call.cancel()
    with_writes = kind.startswith("stream") and not (action == "finish" and delay % 2)
    try:
        if with_writes:
            await call.write(behaviour)
            if action == "cancel_later":
                call.cancel()
            await call.done_writing()
        if action == "headers_first":
            await call.initial_metadata()
        if kind.endswith("unary"):
            if action == "cancel_later":
                task = asyncio.ensure_future(call)
                await asyncio.sleep(0.02)
                call.cancel()
                await task
            else:
                await call
        else:
            async for _ in call:
                if action == "abandon":
                    break
                if action == "cancel_later":
                    call.cancel()
    except (grpc.aio.AioRpcError, asyncio.CancelledError, asyncio.InvalidStateError):
        pass
    if action == "abandon":
        return None  # dropped mid-stream: the call's finaliser must settle it
    return call


async def _kill(servers: Servers, i: int, delay: int) -> None:
    await asyncio.sleep(delay * 0.02)
    port = servers.ports[i]
    await asyncio.to_thread(servers.kill, i)
    await asyncio.sleep(0.05)
    await asyncio.to_thread(servers.start, i, port)


async def _scenario(servers: Servers, batch: list[Any]) -> None:
    registry = CollectorRegistry()
    target = "static:///" + ",".join(f"{h}:{p}" for h, p in zip(HOSTS, servers.ports, strict=True))
    async with connect(target, registry=registry, connect_timeout=5) as channel:
        await channel.channel_ready(timeout=10, min_ready=len(HOSTS))
        jobs = [
            _kill(servers, op[1], op[2]) if op[0] == "kill" else _drive(channel, *op)
            for op in batch
        ]
        calls = await asyncio.wait_for(asyncio.gather(*jobs), 30)
        del jobs
        gc.collect()
        deadline = time.monotonic() + 5
        while True:
            counts = {s.address: s.in_flight for s in channel.endpoints()}
            gauge = registry.get_sample_value("ecsgrpc_client_calls_in_flight", {"target": target})
            unfinished = [c for c in calls if c is not None and not c.done()]
            if not unfinished and set(counts.values()) <= {0} and gauge == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"in flight after {batch}: endpoints {counts}, gauge {gauge}, "
                    f"{len(unfinished)} call(s) not done"
                )
            await asyncio.sleep(0.05)


@pytest.mark.timeout(600)
@settings(
    max_examples=int(os.environ.get("ECSGRPC_ACCOUNTING_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=False,
)
@given(batch=batches)
def test_in_flight_returns_to_zero_whatever_the_calls_and_faults(
    servers: Servers, batch: list[Any]
) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_scenario(servers, batch))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
