"""A raw-bytes gRPC service with the four call kinds whose behaviour the request picks.

``/test.Calls/{Unary,ServerStream,ClientStream,Bidi}``. A request (or, for the
streaming-request kinds, each request) is ``b"VERB[:ARG]"``:

* ``ok`` / any other bytes: answered (echoed);
* ``n:K`` (ServerStream): K messages, then OK;
* ``unavailable``: abort ``UNAVAILABLE`` before sending anything (trailers only);
* ``headers-unavailable``: send initial metadata, then abort ``UNAVAILABLE``;
* ``bare-headers-unavailable``: headers without custom metadata, 0.3 s, ``UNAVAILABLE``;
* ``after:K:CODE`` (ServerStream): K messages, then abort with CODE;
* ``sleep:S``: sleep S seconds, then answer;
* ``internal`` / ``not_found`` ...: abort with that code.

``State.fail_first`` makes the first N calls (across every server sharing the
State) abort ``UNAVAILABLE`` trailers-only after reading their requests.
Every handler entry is counted per server in ``State.executions``.

Run as a script (``python -m tests.support.call_service HOST [PORT]``) it serves
on PORT (default: an ephemeral one), prints the port, and runs until killed.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc

SERVICE = "test.Calls"
UNARY = f"/{SERVICE}/Unary"
SERVER_STREAM = f"/{SERVICE}/ServerStream"
CLIENT_STREAM = f"/{SERVICE}/ClientStream"
BIDI = f"/{SERVICE}/Bidi"


@dataclass
class State:
    fail_first: int = 0
    executions: Counter[str] = field(default_factory=Counter)
    received: dict[str, list[bytes]] = field(default_factory=dict)


def _code(name: str) -> grpc.StatusCode | None:
    return getattr(grpc.StatusCode, name.upper(), None)


async def _act(verb: bytes, context: Any) -> None:
    """Sleep or abort as ``verb`` says; return to answer normally."""
    text = verb.decode(errors="replace")
    if text.startswith("sleep:"):
        await asyncio.sleep(float(text.split(":", 1)[1]))
        return
    if text == "bare-headers-unavailable":
        await context.send_initial_metadata(())
        await asyncio.sleep(0.3)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "after headers")
    if text == "headers-unavailable":
        await context.send_initial_metadata((("x-seen", "headers"),))
        await context.abort(grpc.StatusCode.UNAVAILABLE, "after headers")
    code = _code(text)
    if code is not None and code is not grpc.StatusCode.OK:
        await context.abort(code, f"asked for {text}")


def handler(name: str, state: State | None = None) -> grpc.GenericRpcHandler:
    state = state or State()

    def enter(method: str) -> bool:
        state.executions[f"{name}:{method}"] += 1
        if state.fail_first > 0:
            state.fail_first -= 1
            return True
        return False

    async def unary(request: bytes, context: Any) -> bytes:
        fail = enter("Unary")
        if fail:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "fail_first")
        await _act(request, context)
        return request

    async def server_stream(request: bytes, context: Any) -> Any:
        fail = enter("ServerStream")
        if fail:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "fail_first")
        text = request.decode(errors="replace")
        if text.startswith("n:"):
            for i in range(int(text[2:])):
                yield b"%d" % i
            return
        if text.startswith("after:"):
            _, count, code = text.split(":")
            for i in range(int(count)):
                yield b"%d" % i
            await context.abort(_code(code), f"after {count}")
        await _act(request, context)
        yield request

    async def client_stream(requests: Any, context: Any) -> bytes:
        fail = enter("ClientStream")
        seen = [r async for r in requests]
        state.received[f"{name}:ClientStream"] = seen
        if fail:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "fail_first")
        for r in seen:
            await _act(r, context)
        return b",".join(seen)

    async def bidi(requests: Any, context: Any) -> Any:
        fail = enter("Bidi")
        seen = state.received.setdefault(f"{name}:Bidi", [])
        if fail:
            async for r in requests:
                seen.append(r)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "fail_first")
        async for r in requests:
            seen.append(r)
            await _act(r, context)
            yield r

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        },
    )


async def start(
    host: str, name: str, state: State | None = None, port: int = 0
) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler(name, state),))
    port = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, port


async def _main(host: str, port: int) -> None:
    server, port = await start(host, host, port=port)
    print(port, flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0))
