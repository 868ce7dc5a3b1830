"""The ``gateway_overload`` bench's instruments.

:class:`HttpLoad`, against a real server on loopback, is the load of
``gateway_overload`` and of the gateway measuring scripts: it must read each
answer whole (however it arrives), keep connections alive, open a new one when
the server closes, and count a broken answer as a failure (status 0), never as
a success. :class:`AgentPool` serves the agent endpoints the gateway is
measured against. :class:`OthersCpu` says how busy the agents and the load generator
kept their cores, and the scenario says so when they were full.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from ecsgrpc_apps.bench.agent_pool import AgentPool
from ecsgrpc_apps.bench.gateway_overload import (
    HttpLoad,
    OthersCpu,
    _generator_batched,
    _note_others,
    _note_saturation,
    _note_whole_run,
    _targets,
    collector_paused,
    other_statuses,
    summarize,
    target_bases,
)
from ecsgrpc_apps.bench.results import Row, ScenarioResult

pytestmark = pytest.mark.timeout(30)

HOST = "127.0.0.31"
# An answer writer; False: stop serving this connection.
Answer = Callable[[asyncio.StreamWriter, int], Awaitable[bool]]


def _ok_after(seconds: float, arrived: list[float] | None = None) -> Answer:
    """An answer writer: 200 ``seconds`` after each request (noting when it came in ``arrived``)."""

    async def ok(writer: asyncio.StreamWriter, n: int) -> bool:
        if arrived is not None:
            arrived.append(time.perf_counter())
        await asyncio.sleep(seconds)
        writer.write(_answer(200))
        return True

    return ok


def _answer(status: int, body: bytes = b"{}", extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


class Server:
    """Reads whole requests (head, then content-length bytes) and answers with ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests = 0
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                self.requests += 1
                if not await self.answer(writer, self.requests):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[HttpLoad]:
        server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = server.sockets[0].getsockname()[1]
        load = HttpLoad(HOST, self.port)
        try:
            yield load
        finally:
            load.close()
            server.close()
            await server.wait_closed()


async def test_answers_are_read_whole_over_one_kept_alive_connection() -> None:
    async def ok(writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(_answer(200, b'{"reply": "x"}'))
        return True

    server = Server(ok)
    async with server.running() as load:
        outcomes = [await load.one(time.perf_counter()) for _ in range(5)]
    assert [o.status for o in outcomes] == [200] * 5
    assert all(o.latency > 0 for o in outcomes)
    assert server.connections == 1
    assert server.requests == 5


async def test_an_answer_that_arrives_in_pieces_is_one_answer() -> None:
    async def in_pieces(writer: asyncio.StreamWriter, n: int) -> bool:
        whole = _answer(503, b'{"error": "overloaded"}', "retry-after: 1\r\n")
        cuts = [0, 10, len(whole) - 5, len(whole)]  # mid status line, mid body
        for begin, end in itertools.pairwise(cuts):
            if begin:
                await asyncio.sleep(0.02)
            writer.write(whole[begin:end])
            await writer.drain()
        return True

    server = Server(in_pieces)
    async with server.running() as load:
        first = await load.one(time.perf_counter())
        second = await load.one(time.perf_counter())
    assert (first.status, second.status) == (503, 503)
    assert first.latency >= 0.04  # it waited for the last piece
    assert server.connections == 1


async def test_connection_close_is_honoured_and_the_next_request_reconnects() -> None:
    async def close_after_first(writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(_answer(200, extra="connection: close\r\n" if n == 1 else ""))
        return n != 1

    server = Server(close_after_first)
    async with server.running() as load:
        statuses = [(await load.one(time.perf_counter())).status for _ in range(3)]
        assert load.open_count == 1
    assert statuses == [200, 200, 200]
    assert server.connections == 2


async def test_a_connection_closed_without_an_answer_is_a_failure_not_a_hang() -> None:
    async def hang_up(writer: asyncio.StreamWriter, n: int) -> bool:
        if n == 2:
            return False  # closes without answering the second request
        writer.write(_answer(200))
        return True

    server = Server(hang_up)
    async with server.running() as load:
        statuses = [(await load.one(time.perf_counter())).status for _ in range(3)]
        assert load.open_count == 1  # the broken connection is not counted any more
    assert statuses == [200, 0, 200]
    assert server.connections == 2


async def test_the_other_statuses_are_named_with_their_counts() -> None:
    refused = _answer(503, extra="Retry-After: 1\r\n")
    answers = iter([_answer(200), refused, _answer(502), _answer(502), None, _answer(504)])

    async def answer(writer: asyncio.StreamWriter, n: int) -> bool:
        raw = next(answers)
        if raw is None:
            return False  # hangs up: status 0
        writer.write(raw)
        return True

    async with Server(answer).running() as load:
        outcomes = [await load.one(time.perf_counter()) for _ in range(6)]
    assert other_statuses(outcomes) == {"0": 1, "502": 2}


async def test_a_503_without_retry_after_is_not_counted_as_a_refusal() -> None:
    """The gateway promises 503 with Retry-After; a bare 503 is ``other``, named."""
    answers = iter(
        [
            _answer(503, extra="Retry-After: 1\r\n"),
            _answer(503),
            _answer(200, extra="retry-after: 2\r\n"),  # a 200 stays a 200 whatever it says
        ]
    )

    async def answer(writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(next(answers))
        return True

    async with Server(answer).running() as load:
        outcomes = [await load.one(time.perf_counter()) for _ in range(3)]
    assert [o.retry_after for o in outcomes] == [True, False, True]
    row = summarize(outcomes, 1.0, 0.0)
    assert (row["ok"], row["refused_503"], row["other"]) == (1, 1, 1)
    assert other_statuses(outcomes) == {"503 without retry-after": 1}


async def test_a_refusal_is_timed_from_its_write_not_from_its_schedule() -> None:
    """The generator's own lateness is in the 200s' latency, not in the refusal's time."""

    async def refuse(writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(_answer(503, extra="Retry-After: 1\r\n"))
        return True

    async with Server(refuse).running() as load:
        late = time.perf_counter() - 0.5  # scheduled half a second ago
        outcomes = [await load.one(late) for _ in range(3)]
    assert all(o.latency >= 0.5 and o.send_delay >= 0.5 for o in outcomes)
    assert all(o.started == late for o in outcomes)
    row = summarize(outcomes, 1.0, 0.0)
    assert row["refused_503"] == 3
    refused_ms = row["refused_p99_ms"]
    assert isinstance(refused_ms, float) and 0 < refused_ms < 400  # not the 500 ms of lateness
    assert summarize(outcomes[:0], 1.0, 0.0)["refused_p99_ms"] == "none"


async def test_the_collector_is_paused_while_the_load_runs_and_restored_after() -> None:
    """The generator's own collections would count as the gateway's latency."""
    seen: list[bool] = []

    async def ok(writer: asyncio.StreamWriter, n: int) -> bool:
        seen.append(gc.isenabled())  # the server runs in this process, on this loop
        writer.write(_answer(200))
        return True

    assert gc.isenabled()
    async with Server(ok).running() as load:
        await load.open_loop(200.0, 0.1)
        assert gc.isenabled()
        await load.closed_loop(2, 0.1)
        assert gc.isenabled()
    assert len(seen) >= 20 and not any(seen)

    gc.disable()  # a caller that paused it already keeps it paused
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def one_answer_then_close(writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(_answer(200))
        await writer.drain()
        return False  # answer, then close (as a keep-alive timeout would)

    server = Server(one_answer_then_close)
    async with server.running() as load:
        first = await load.one(time.perf_counter())
        await asyncio.sleep(0.1)  # the close reaches the client
        second = await load.one(time.perf_counter())
    assert (first.status, second.status) == (200, 200)
    assert server.connections == 2


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{}",  # no content-length
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n",  # bytes past it
        b"garbage\r\ncontent-length: 0\r\n\r\n",  # no status
    ],
    ids=["no-length", "extra-bytes", "no-status"],
)
async def test_a_broken_answer_is_a_failure_and_its_connection_is_dropped(raw: bytes) -> None:
    async def broken_first(writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(raw if n == 1 else _answer(200))
        return n != 1

    server = Server(broken_first)
    async with server.running() as load:
        first = await load.one(time.perf_counter())
        second = await load.one(time.perf_counter())
        assert load.open_count == 1
    assert (first.status, second.status) == (0, 200)
    assert server.connections == 2


async def test_a_closed_loop_keeps_at_most_its_concurrency_of_connections() -> None:
    server = Server(_ok_after(0.005))
    async with server.running() as load:
        outcomes = await load.closed_loop(4, 0.3)
    assert outcomes
    assert all(o.status == 200 for o in outcomes)
    assert server.connections == 4
    assert server.requests == len(outcomes)


async def test_the_open_loop_sends_on_schedule_whatever_the_answers() -> None:
    """Open loop: arrivals go out at their times while earlier ones wait on answers.

    The server answers each request 0.3 s after it came; at 50/s for 1 s, a
    closed loop would have sent one request per connection and waited. Latency
    counts from the scheduled time, so it includes every wait.
    """
    arrived: list[float] = []
    server = Server(_ok_after(0.3, arrived))
    async with server.running() as load:
        begin = time.perf_counter()
        outcomes, reached = await load.open_loop(50, 1.0)
    assert len(outcomes) == 50
    assert all(o.status == 200 for o in outcomes)
    assert 45 <= reached <= 55
    # Each connection carries one request at a time: with answers 0.3 s away,
    # about 15 were open together; all 50 were sent within the second.
    assert 10 <= server.connections <= 20
    assert max(arrived) - begin < 1.1
    assert sum(t - begin < 0.5 for t in arrived) >= 20  # not held back by the answers
    assert all(0.29 <= o.latency < 1.0 for o in outcomes)
    # Sent on time: the send delay (schedule to write) is part of the latency.
    assert all(0 <= o.send_delay < 0.1 and o.send_delay < o.latency for o in outcomes)


async def test_the_open_loop_counts_what_it_could_not_send(monkeypatch: pytest.MonkeyPatch) -> None:
    """With all its connections waiting, an arrival is not sent and counts as -1."""
    monkeypatch.setattr("ecsgrpc_apps.bench.gateway_overload.MAX_CONNECTIONS", 3)
    server = Server(_ok_after(0.5))
    async with server.running() as load:
        outcomes, _ = await load.open_loop(20, 0.5)
    statuses = sorted(o.status for o in outcomes)
    assert statuses == [-1] * 7 + [200] * 3
    assert server.requests == 3


async def test_an_answer_after_its_caller_gave_up_is_dropped_quietly() -> None:
    """A request whose awaiting caller was cancelled: its late answer raises nothing."""
    errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, ctx: errors.append(ctx))

    async def late_ok(writer: asyncio.StreamWriter, n: int) -> bool:
        await asyncio.sleep(0.2 if n == 1 else 0)
        writer.write(_answer(200))
        return True

    server = Server(late_ok)
    async with server.running() as load:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(load.one(time.perf_counter()), 0.05)
        await asyncio.sleep(0.3)  # the first answer arrives for nobody
        second = await load.one(time.perf_counter())
    assert second.status == 200
    assert errors == []


def test_the_generator_is_batched_during_the_steps_and_restored_after() -> None:
    """Only the calling thread (the generator's loop) changes, and only while inside."""
    import threading

    other_policy: list[int] = []
    ready, done = threading.Event(), threading.Event()

    def other() -> None:
        ready.set()
        done.wait(10)
        other_policy.append(os.sched_getscheduler(0))

    thread = threading.Thread(target=other)
    thread.start()
    ready.wait(10)
    before = os.sched_getscheduler(0)
    try:
        with _generator_batched() as policy:
            assert policy == "batch"
            assert os.sched_getscheduler(0) == os.SCHED_BATCH
            done.set()
            thread.join(10)
        assert os.sched_getscheduler(0) == before
        assert other_policy == [before]  # the other thread kept its policy
    finally:
        done.set()
        thread.join(10)
        os.sched_setscheduler(0, before, os.sched_param(0))


def test_others_cpu_counts_a_busy_process_and_not_an_idle_one() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.2)  # both started
        burning, sleeping = OthersCpu([busy.pid], cores=1), OthersCpu([idle.pid], cores=1)
        burning.start()
        sleeping.start()
        time.sleep(1.0)  # this process sleeps: only the children's CPU counts
        # On 2 shared cores a spinning process gets at least a good part of one.
        assert burning.pct() > 30
        assert sleeping.pct() < 10
        agents, own = burning.split()
        assert agents > 30
        assert own < 10  # this process (the load generator's) slept
        spin_until = time.process_time() + 0.3
        while time.process_time() < spin_until:
            pass  # now this process burns: counted apart from the agents
        assert sleeping.split()[1] > 10
    finally:
        for proc in (busy, idle):
            proc.kill()
            proc.wait(10)


def test_the_scenario_says_when_the_agents_cores_were_full() -> None:
    def result(saturation: float, steps: dict[str, float]) -> ScenarioResult:
        out = ScenarioResult("gateway_overload", "t", ("others_cpu_pct",))
        out.params["saturation_others_cpu_pct"] = saturation
        out.rows = [Row("gateway", {"others_cpu_pct": pct}, case=c) for c, pct in steps.items()]
        return out

    full = result(99.2, {"0.5x": 60.0, "1.5x": 97.4, "2x": 100.0})
    _note_others(full)
    assert len(full.notes) == 1
    assert "99 % busy at saturation, 97 % busy at 1.5x, 100 % busy at 2x" in full.notes[0]

    room = result(80.0, {"0.5x": 40.0, "2x": 94.9})
    _note_others(room)
    assert room.notes == []


def test_the_scenario_says_how_much_of_the_full_cores_the_load_generator_took() -> None:
    out = ScenarioResult("gateway_overload", "t", ("others_cpu_pct", "loadgen_cpu_pct"))
    out.params["saturation_others_cpu_pct"] = 96.0
    out.params["saturation_loadgen_cpu_pct"] = 12.0
    out.rows = [
        Row("gateway", {"others_cpu_pct": 70.0, "loadgen_cpu_pct": 6.0}, case="0.5x"),
        Row("gateway", {"others_cpu_pct": 97.0, "loadgen_cpu_pct": 21.5}, case="2x"),
        Row("gateway", {"others_cpu_pct": 60.0, "loadgen_cpu_pct": 8.0}, case="after 2x"),
    ]
    _note_others(out)
    assert len(out.notes) == 2
    assert "took 12 % at saturation, 6 % at 0.5x, 22 % at 2x, 8 % after 2x" in out.notes[1]


def _stepped(saturation: float, after: float, goodput: float) -> ScenarioResult:
    out = ScenarioResult("gateway_overload", "t", ("goodput_rps", "p99_ms"))
    out.params["saturation_rps"] = saturation
    out.params["after_steps"] = {"rps": after, "cpu_ms_per_ok": 1.0, "not_200": {}}
    out.rows = [
        Row("gateway", {"goodput_rps": goodput / 2, "p99_ms": 10.0}, case="0.5x"),
        Row("gateway", {"goodput_rps": goodput, "p99_ms": 15.0}, case="1.5x"),
        Row("gateway", {"goodput_rps": goodput, "p99_ms": 25.0}, case="2x"),
    ]
    return out


def test_goodput_is_judged_against_the_higher_closed_loop() -> None:
    """A slow closed loop before the steps does not lower the goodput target."""
    slow_before = _stepped(saturation=900.0, after=1100.0, goodput=950.0)
    _targets(slow_before)
    assert slow_before.params["target_base_rps"] == {"1.5x": 1100.0, "2x": 1100.0}
    goodput = [t for t in slow_before.targets if t.metric == "goodput_rps"]
    assert [t.case for t in goodput] == ["1.5x", "2x"]
    assert all(t.op == ">=" and t.goal == pytest.approx(990) and not t.met for t in goodput)

    # A low closed loop after the steps (a gateway that has not recovered) does
    # not lower it either.
    slow_after = _stepped(saturation=1000.0, after=400.0, goodput=950.0)
    _targets(slow_after)
    assert slow_after.params["target_base_rps"] == {"1.5x": 1000.0, "2x": 1000.0}
    assert all(t.met for t in slow_after.targets if t.metric == "goodput_rps")
    p99 = [t for t in slow_after.targets if t.metric == "p99_ms"]
    assert [(t.case, t.met) for t in p99] == [("1.5x", True), ("2x", False)]  # 2x of 10 ms


def test_each_judged_step_is_judged_against_the_closed_loops_around_it() -> None:
    """1.5x between the loops before 1.5x and before 2x; 2x between that and the last."""
    drifted = _stepped(saturation=1300.0, after=900.0, goodput=0.0)
    drifted.params["closed_loops_rps"] = {
        "S": 1300.0,
        "before 1.5x": 1000.0,
        "before 2x": 950.0,
        "after the steps": 900.0,
    }
    drifted.rows[1].metrics["goodput_rps"] = 905.0  # 1.5x: 90.5 % of 1000
    drifted.rows[2].metrics["goodput_rps"] = 850.0  # 2x: 89.5 % of 950
    _targets(drifted)
    assert drifted.params["target_base_rps"] == {"1.5x": 1000.0, "2x": 950.0}
    goodput = {t.case: t for t in drifted.targets if t.metric == "goodput_rps"}
    assert goodput["1.5x"].goal == pytest.approx(900) and goodput["1.5x"].met
    assert goodput["2x"].goal == pytest.approx(855) and not goodput["2x"].met

    # The whole run's closed loops are in a note, with the goodput against them.
    _note_whole_run(drifted)
    assert drifted.notes == [
        "closed loops (conversations/s): S 1,300, before 1.5x 1,000, before 2x 950, after "
        "the steps 900; against the higher of S and the loop after the steps (1,300/s), "
        "goodput was 70 % at 1.5x, 65 % at 2x"
    ]


def test_refusals_are_judged_on_their_speed_where_a_step_refused() -> None:
    out = _stepped(saturation=1000.0, after=1000.0, goodput=950.0)
    out.rows[1].metrics.update(refused_503=400, refused_p99_ms=3.2)  # 1.5x
    out.rows[2].metrics.update(refused_503=900, refused_p99_ms=7.5)  # 2x
    _targets(out)
    refused = [(t.case, t.op, t.goal, t.met) for t in out.targets if t.metric == "refused_p99_ms"]
    assert refused == [("1.5x", "<=", 5.0, True), ("2x", "<=", 5.0, False)]

    nothing = _stepped(saturation=1000.0, after=1000.0, goodput=950.0)
    nothing.rows[1].metrics.update(refused_503=0, refused_p99_ms="none")
    _targets(nothing)
    assert [t.case for t in nothing.targets if t.metric == "refused_p99_ms"] == []


def test_after_2x_the_gateway_is_judged_against_the_half_load_step() -> None:
    out = _stepped(saturation=1000.0, after=1000.0, goodput=950.0)
    out.rows[0].metrics.update(p50_ms=3.0, rss_mb=72.0)  # 0.5x, its p99 10 ms
    recovered = {"p50_ms": 4.4, "p99_ms": 21.0, "rss_mb": 79.0, "refused_503": 0}
    out.rows.append(Row("gateway", {**recovered, "timeout_504": 0, "other": 0}, case="after 2x"))
    _targets(out)
    after = {t.metric: t for t in out.targets if t.case == "after 2x"}
    assert list(after) == ["not_200", "p50_ms", "p99_ms", "rss_mb"]
    assert after["not_200"].met and after["not_200"].value == 0
    assert after["p50_ms"].goal == pytest.approx(4.5) and after["p50_ms"].met
    assert after["p99_ms"].goal == pytest.approx(20.0) and not after["p99_ms"].met
    assert after["rss_mb"].goal == pytest.approx(79.2) and after["rss_mb"].met

    # Refusals, 504s or others after the drop are a miss, counted together.
    out.rows[-1].metrics.update(refused_503=2, other=1)
    out.targets.clear()
    _targets(out)
    failed = next(t for t in out.targets if t.case == "after 2x" and t.metric == "not_200")
    assert failed.value == 3 and not failed.met


def test_a_result_without_brackets_has_one_base_for_every_judged_step() -> None:
    older = _stepped(saturation=1000.0, after=1100.0, goodput=0.0)
    assert target_bases(older.params) == {"1.5x": 1100.0, "2x": 1100.0}
    _note_whole_run(older)
    assert older.notes == []


def test_the_scenario_says_when_s_left_the_gateways_core_part_idle() -> None:
    idle = ScenarioResult("gateway_overload", "t", ())
    idle.params["saturation_gateway_cpu_pct"] = 84.8
    _note_saturation(idle)
    assert len(idle.notes) == 1
    assert idle.notes[0].startswith("while S was measured the gateway's core was 85 % busy")

    full = ScenarioResult("gateway_overload", "t", ())
    full.params["saturation_gateway_cpu_pct"] = 96.0
    _note_saturation(full)
    assert full.notes == []


def test_the_agent_pool_serves_each_endpoint_as_an_agent_with_health() -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from ecsgrpc_apps.workflow import SERVICE_NAME, pb2, workflow_stub

    hosts = ["127.0.0.44", "127.0.0.45"]
    pool = AgentPool(hosts)
    addresses = pool.start()
    try:
        assert [a.rsplit(":", 1)[0] for a in addresses] == hosts
        request = pb2.ConversationRequest(messages=[pb2.Message(role="user", content="a b c")])
        for host, address in zip(hosts, addresses, strict=True):
            with grpc.insecure_channel(address) as channel:
                events = list(workflow_stub(channel).ProcessConversation(request, timeout=10))
                health = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10
                )
            assert [e.text for e in events] == ["", "a", " b", " c", ""]
            assert {e.served_by for e in events} == {f"agent-{host}"}
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        pool.stop()
    assert pool.proc is not None
    assert pool.proc.returncode == 0  # SIGTERM: a clean stop


def test_an_agent_pool_that_cannot_bind_says_why() -> None:
    pool = AgentPool(["192.0.2.1"])  # TEST-NET-1: not an address of this machine
    with pytest.raises(RuntimeError, match="did not serve"):
        pool.start(timeout=20)
    assert pool.proc is not None
    assert pool.proc.poll() is not None
