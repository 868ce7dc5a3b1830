"""Gateway CPU per conversation (JSON and SSE) against other code, and direct gRPC.

Three agents; then, for each round and each variant in turn (interleaved), a
fresh ``ecsgrpc gateway`` process pinned to the first core (agents and this
load generator on the others, as ``gateway_overload`` places them), a
warm-up, and a closed loop of ``--clients`` keep-alive HTTP/1.1 clients for
``--seconds``: JSON conversations, then SSE ones. Per variant and mode: the
gateway's CPU (from /proc) per conversation served and the conversations/s.
``direct grpc`` is a plain ``grpc.aio`` client (gRPC's ``round_robin`` over
the same agents, the same request) in its own process on the gateway's core,
``direct ecsgrpc`` the same over ``ecsgrpc.connect()`` (the gateway's
channel), ``direct ecsgrpc-batch`` that under ``SCHED_BATCH`` (``chrt --batch``,
as the gateway runs): their CPU per conversation and conversations/s. Prints each measurement, then
the medians and each variant's ratio to the first one.

A variant is ``NAME`` (this code), ``NAME=SRC`` (``PYTHONPATH=SRC``: another
checkout's ``src``, e.g. ``git worktree add /tmp/base main``), and may carry
environment after commas: ``h11,GATEWAY_HTTP_PARSER=h11``.

    .venv/bin/python scripts/gateway_cost.py --variant base=/tmp/base/src --variant new \\
        --rounds 3 --seconds 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

from gateway_bench_setup import Variant, pinned_agents

from ecsgrpc_apps.bench.gateway_overload import GatewayProcess, HttpLoad, pin

_CONTENT = "one two three four"  # 6 agent events: START, 4 DELTAs, COMPLETE
_BODY = json.dumps({"messages": [{"role": "user", "content": _CONTENT}]}).encode()

_DIRECT = r"""
import asyncio, json, resource, sys, time
import grpc
from ecsgrpc_apps.workflow import pb2, workflow_stub
target, clients = sys.argv[1], int(sys.argv[2])
warm, seconds = float(sys.argv[3]), float(sys.argv[4])
config = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
async def main():
    if target.startswith("static:"):
        import ecsgrpc
        channel = ecsgrpc.connect(target)
    else:
        channel = grpc.aio.insecure_channel(target, options=[("grpc.service_config", config)])
    stub = workflow_stub(channel)
    request = pb2.ConversationRequest(messages=[pb2.Message(role="user", content=sys.argv[5])])
    done = 0
    async def worker(stop):
        nonlocal done
        while time.perf_counter() < stop:
            events = [e async for e in stub.ProcessConversation(request, timeout=30)]
            assert len(events) == 6, events
            done += 1
    await asyncio.gather(*(worker(time.perf_counter() + warm) for _ in range(clients)))
    done = 0
    r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.perf_counter()
    await asyncio.gather(*(worker(time.perf_counter() + seconds) for _ in range(clients)))
    r1 = resource.getrusage(resource.RUSAGE_SELF); dt = time.perf_counter() - t0
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    print(json.dumps({"rps": done / dt, "cpu_ms": cpu / done * 1000}))
    await channel.close()
asyncio.run(main())
"""


async def _sse_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> int:
    """POST one SSE conversation on a kept-alive connection; the status (body read whole)."""
    writer.write(
        (
            f"POST /v1/conversations HTTP/1.1\r\nhost: {host}\r\n"
            f"content-type: application/json\r\naccept: text/event-stream\r\n"
            f"content-length: {len(_BODY)}\r\n\r\n"
        ).encode()
        + _BODY
    )
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    frames = b""
    while True:  # chunked
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        frames += await reader.readexactly(size + 2)
        if size == 0:
            break
    if status == 200 and b"event: done" not in frames:
        return 0
    return status


async def _sse_loop(host: str, port: int, clients: int, seconds: float) -> int:
    ok = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < stop:
                status = await _sse_one(reader, writer, host)  # not `ok += await`: lost updates
                ok += status == 200
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(clients)))
    return ok


async def _gateway_round(
    variant: Variant, target: str, core: int, args: argparse.Namespace
) -> dict[str, tuple[float, float]]:
    env = {"GATEWAY_ADAPTIVE_CONCURRENCY": "false", **variant.env}
    gateway = GatewayProcess(target, env=env)
    await asyncio.to_thread(gateway.start)
    out: dict[str, tuple[float, float]] = {}
    try:
        assert gateway.proc is not None
        pin(gateway.proc.pid, {core})
        load = HttpLoad(gateway.host, gateway.port)
        for mode in ("json", "sse"):
            if mode == "json":
                await load.closed_loop(args.clients, args.warmup)
            else:
                await _sse_loop(gateway.host, gateway.port, args.clients, args.warmup)
            cpu0, t0 = gateway.cpu_seconds(), time.perf_counter()
            if mode == "json":
                outcomes = await load.closed_loop(args.clients, args.seconds)
                ok = sum(1 for o in outcomes if o.status == 200)
                if ok != len(outcomes):
                    raise RuntimeError(f"{variant.name}: {len(outcomes) - ok} JSON failures")
            else:
                ok = await _sse_loop(gateway.host, gateway.port, args.clients, args.seconds)
            elapsed, cpu = time.perf_counter() - t0, gateway.cpu_seconds() - cpu0
            out[mode] = (cpu / ok * 1000, ok / elapsed)
        load.close()
    finally:
        await asyncio.to_thread(gateway.stop)
    return out


def _direct_round(
    target: str, core: int, args: argparse.Namespace, *, batch: bool = False
) -> tuple[float, float]:
    proc = subprocess.Popen(
        [
            *(["chrt", "--batch", "0"] if batch else []),  # threads inherit the policy
            sys.executable,
            "-c",
            _DIRECT,
            target,
            str(args.clients),
            str(args.warmup),
            str(args.seconds),
            _CONTENT,
        ],
        stdout=subprocess.PIPE,
    )
    os.sched_setaffinity(proc.pid, {core})  # before it starts grpc's threads
    stdout, _ = proc.communicate(timeout=args.warmup + args.seconds + 60)
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    return float(result["cpu_ms"]), float(result["rps"])


async def main(args: argparse.Namespace) -> None:
    variants = [Variant.parse(v) for v in args.variant] or [Variant("this")]
    results: dict[str, list[tuple[float, float]]] = {}
    async with pinned_agents() as (target, core):
        for rnd in range(args.rounds):
            for variant in variants:
                measured = await _gateway_round(variant, target, core, args)
                for mode, value in measured.items():
                    results.setdefault(f"{variant.name} {mode}", []).append(value)
                    print(
                        f"round {rnd} {variant.name:8s} {mode:4s} "
                        f"cpu {value[0]:.3f} ms  {value[1]:.0f}/s",
                        flush=True,
                    )
            if not args.direct:
                continue
            for name, direct, batch in (
                ("grpc", "ipv4:" + target.removeprefix("static:///"), False),
                ("ecsgrpc", target, False),
                ("ecsgrpc-batch", target, True),
            ):
                value = await asyncio.to_thread(_direct_round, direct, core, args, batch=batch)
                results.setdefault(f"direct {name}", []).append(value)
                line = f"cpu {value[0]:.3f} ms  {value[1]:.0f}/s"
                print(f"round {rnd} direct   {name} {line}", flush=True)
    print(f"end {time.strftime('%H:%M:%S', time.gmtime())} load {os.getloadavg()}")
    first = variants[0].name
    for key, values in results.items():
        cpu = statistics.median(v[0] for v in values)
        rps = statistics.median(v[1] for v in values)
        mode = key.split()[-1]
        base = results.get(f"{first} {mode}")
        ratio = ""
        if base and not key.startswith(first):
            ratio = f"  cpu {cpu / statistics.median(v[0] for v in base):.2f}x of {first}"
        print(f"median {key:14s} cpu {cpu:.3f} ms  {rps:.0f}/s{ratio}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--no-direct", dest="direct", action="store_false")
    asyncio.run(main(parser.parse_args()))
