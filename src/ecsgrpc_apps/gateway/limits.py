"""Checks on a JSON request body before the app sees it: media type and size.

A pure ASGI middleware, so the size limit holds for a body sent with a
``Content-Length`` (checked before reading) and for a chunked one (counted
while reading): the body is never buffered beyond ``max_bytes``.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ecsgrpc_apps.gateway.errors import ApiError

__all__ = ["JsonBodyLimits", "is_json_media_type"]

_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _Disconnected(Exception):
    """The client went away while sending its body."""


def is_json_media_type(content_type: str | None) -> bool:
    """True for ``application/json``, ``application/*+json`` (any parameters), or no type."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _check_headers(headers: Headers, max_bytes: int) -> None:
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
    if int(length) > max_bytes:
        raise ApiError(
            413, "body_too_large", f"the body has {int(length)} bytes; the limit is {max_bytes}"
        )


async def _read_body(receive: Receive, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(
                413, "body_too_large", f"the body is over the limit of {max_bytes} bytes"
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once, then the real channel (so a later disconnect is still seen)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class JsonBodyLimits:
    """415 for a non-JSON ``Content-Type``, 413 for a body over ``max_bytes``,
    on the given ``paths`` (POST/PUT/PATCH); other requests pass untouched."""

    def __init__(self, app: ASGIApp, *, paths: frozenset[str], max_bytes: int) -> None:
        self.app = app
        self.paths = paths
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _METHODS
            or scope["path"] not in self.paths
        ):
            await self.app(scope, receive, send)
            return
        try:
            _check_headers(Headers(scope=scope), self.max_bytes)
            body = await _read_body(receive, self.max_bytes)
        except ApiError as err:
            await err.response()(scope, receive, send)
            return
        except _Disconnected:
            return
        await self.app(scope, _replay(body, receive), send)
