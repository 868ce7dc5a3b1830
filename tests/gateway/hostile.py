"""Hostile HTTP clients as a separate process (so their own CPU is not the gateway's).

``python -m tests.gateway.hostile MODE HOST PORT CONNECTIONS`` runs until killed:

* ``headers``: each connection sends a head of 10,000 header fields, reads the
  answer, and starts again;
* ``slowloris``: each connection sends a request line, then one header byte
  per connection every 0.2 s, reconnecting when the server closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


def many_headers(count: int) -> bytes:
    lines = b"".join(b"x-h%d: v\r\n" % i for i in range(count))
    return b"GET /healthz HTTP/1.1\r\nhost: gw\r\n" + lines + b"\r\n"


async def headers(host: str, port: int) -> None:
    payload = many_headers(10_000)
    while True:
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(payload)
                await writer.drain()
                await asyncio.wait_for(reader.read(), 5)
            finally:
                writer.close()


async def slowloris(host: str, port: int) -> None:
    while True:
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\n")
                while not reader.at_eof() and not writer.is_closing():
                    writer.write(b"x")
                    await writer.drain()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(reader.read(65536), 0.2)
            finally:
                writer.close()


async def main(mode: str, host: str, port: int, connections: int) -> None:
    run = {"headers": headers, "slowloris": slowloris}[mode]
    print("started", flush=True)
    await asyncio.gather(*(run(host, port) for _ in range(connections)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
