"""Checks on a JSON request body: media type and size, before and while reading it.

The size limit holds for a body sent with a ``Content-Length`` (checked before
reading) and for a chunked one (counted while reading): the body is never
buffered beyond ``max_bytes``.

A 413 is answered only after the rest of the body was read and dropped, up to
:data:`LINGER_BYTES` and :data:`LINGER_SECONDS` (nginx's "lingering close"):
a client that sends its whole body before reading the answer (Python's
``urllib``, ``curl`` without ``Expect``) then sees the 413, not a connection
reset. A body beyond those bounds gets its 413 at once with
``Connection: close``.
"""

from __future__ import annotations

import asyncio
import time

from starlette.datastructures import Headers
from starlette.types import Receive

from ecsgrpc_apps.gateway.errors import ApiError

__all__ = [
    "LINGER_BYTES",
    "LINGER_SECONDS",
    "BodyTooLarge",
    "Disconnected",
    "check_headers",
    "is_json_media_type",
    "read_body",
]

# How much of an over-limit body is read and dropped before the 413 is sent.
LINGER_BYTES = 32 * 1024 * 1024
LINGER_SECONDS = 10.0


class Disconnected(Exception):
    """The client went away while sending its body."""


class BodyTooLarge(ApiError):
    """413; :meth:`drain` reads and drops the rest of the body first (bounded)."""

    def __init__(self, message: str, *, declared: int | None = None) -> None:
        super().__init__(413, "body_too_large", message)
        self.declared = declared

    async def drain(self, receive: Receive) -> None:
        """Read the rest of the body (dropped), within the linger bounds.

        Past the bounds (or for a declared length past :data:`LINGER_BYTES`)
        the answer gets ``Connection: close`` instead.
        """
        if self.declared is not None and self.declared > LINGER_BYTES:
            self.headers["connection"] = "close"
            return
        dropped = 0
        give_up = time.monotonic() + LINGER_SECONDS
        try:
            while True:
                left = give_up - time.monotonic()
                if left <= 0:
                    break
                async with asyncio.timeout(left):
                    message = await receive()
                if message["type"] == "http.disconnect":
                    return
                dropped += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
                if dropped > LINGER_BYTES:
                    break
        except TimeoutError:
            pass
        self.headers["connection"] = "close"


def is_json_media_type(content_type: str | None) -> bool:
    """True for ``application/json``, ``application/*+json`` (any parameters), or no type."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def check_headers(headers: Headers, max_bytes: int) -> None:
    """415 for a non-JSON ``Content-Type``; 400 for a bad ``Content-Length``;
    413 (BodyTooLarge) above ``max_bytes``."""
    content_type = headers.get("content-type")
    if not is_json_media_type(content_type):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type {content_type!r} is not supported; send application/json",
        )
    length = headers.get("content-length")
    if length is None:
        return
    if not length.strip().isdigit():
        raise ApiError(400, "bad_request", f"Content-Length {length!r} is not a number")
    size = int(length)
    if size > max_bytes:
        raise BodyTooLarge(
            f"the body has {size} bytes; the limit is {max_bytes}",
            declared=size,
        )


async def read_body(receive: Receive, max_bytes: int) -> bytes:
    """The whole body; BodyTooLarge past ``max_bytes``, Disconnected if the client left."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise Disconnected
    first: bytes = message.get("body", b"")
    if not message.get("more_body", False) and len(first) <= max_bytes:
        return first  # the usual case: the body came in one piece
    chunks = [first]
    size = len(first)
    while True:
        if size > max_bytes:
            raise BodyTooLarge(f"the body is over the limit of {max_bytes} bytes")
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
