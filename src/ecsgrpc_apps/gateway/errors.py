"""HTTP errors of the gateway: one body shape, gRPC status mapping, handlers.

Every error answer is an :class:`~ecsgrpc_apps.gateway.models.ErrorBody`; no
traceback ever reaches a client. gRPC statuses map to HTTP as documented in
``docs/gateway.md``: INVALID_ARGUMENT 400, RESOURCE_EXHAUSTED 429,
UNAVAILABLE 503, DEADLINE_EXCEEDED 504, any other 502; no ready agent
(:class:`~ecsgrpc.errors.NoEndpointAvailable`, whatever its code) is 503.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ecsgrpc.errors import NoEndpointAvailable
from ecsgrpc_apps.gateway.models import ErrorBody, ErrorDetail, Problem

__all__ = [
    "ApiError",
    "error_responses",
    "from_grpc",
    "install_handlers",
    "problems_from",
]

log = logging.getLogger(__name__)

# gRPC status -> (HTTP status, error code). Anything else is 502.
GRPC_TO_HTTP: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
UPSTREAM_DEFAULT_STATUS = 502

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
}


class ApiError(Exception):
    """An error answer: HTTP ``status``, a stable ``code`` and a message naming the problem."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        problems: Iterable[Problem] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = list(problems)
        self.headers = dict(headers or {})

    def body(self) -> ErrorBody:
        return ErrorBody(
            error=ErrorDetail(
                code=self.code, message=self.message, status=self.status, problems=self.problems
            )
        )

    def response(self) -> JSONResponse:
        return JSONResponse(
            self.body().model_dump(mode="json"), status_code=self.status, headers=self.headers
        )


def from_grpc(exc: grpc.aio.AioRpcError) -> ApiError:
    """The HTTP error for a failed upstream call (see the module docstring)."""
    code: grpc.StatusCode = exc.code()
    details = exc.details() or ""
    if isinstance(exc, NoEndpointAvailable):
        return ApiError(
            503,
            "no_endpoint",
            f"no Workflow Agent is available: {details}",
            headers={"Retry-After": "1"},
        )
    status = GRPC_TO_HTTP.get(code, UPSTREAM_DEFAULT_STATUS)
    headers = {"Retry-After": "1"} if status in (429, 503) else {}
    if status == 400:
        message = f"the agent rejected the conversation: {details}"
    else:
        message = f"the agent call failed with {code.name}: {details}"
    return ApiError(status, code.name.lower(), message, headers=headers)


def _problem(err: Mapping[str, Any], prefix: tuple[str, ...]) -> Problem:
    location = ".".join(str(p) for p in (*prefix, *err.get("loc", ()))) or "body"
    message = str(err.get("msg", "invalid value"))
    if err.get("type") == "missing" and location == "body":
        message = "a JSON object is required"
    elif err.get("type") == "value_error":
        # Our own validators' words, without pydantic's "Value error, " prefix.
        message = str((err.get("ctx") or {}).get("error", message))
    return Problem(location=location, message=message)


def problems_from(
    errors: Iterable[Mapping[str, Any]], prefix: tuple[str, ...] = ("body",)
) -> list[Problem]:
    """One Problem per pydantic error, located from ``body`` (``body.messages.0.role``)."""
    return [_problem(err, prefix) for err in errors]


def from_validation(exc: RequestValidationError) -> ApiError:
    """400 for a body that is not JSON, 422 naming each invalid field otherwise."""
    errors = list(exc.errors())
    for err in errors:
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "invalid JSON")
            loc = err.get("loc", ())
            where = f" at character {loc[1]}" if len(loc) > 1 else ""
            return ApiError(400, "bad_json", f"the body is not valid JSON: {reason}{where}")
    problems = problems_from(errors, ())
    summary = "; ".join(f"{p.location}: {p.message}" for p in problems)
    return ApiError(422, "invalid_request", f"invalid request: {summary}", problems=problems)


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return from_validation(exc).response()


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    headers = dict(exc.headers or {})
    return ApiError(exc.status_code, code, str(exc.detail), headers=headers).response()


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return ApiError(500, "internal", "internal error (logged by the gateway)").response()


def install_handlers(app: FastAPI) -> None:
    """Make every error answer an ErrorBody."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)


_DESCRIPTIONS = {
    400: "The body is not valid JSON, or the agent rejected the conversation (INVALID_ARGUMENT).",
    413: "The body is larger than GATEWAY_MAX_BODY_BYTES.",
    415: "The Content-Type is not JSON.",
    422: "The body is JSON but not a valid conversation (each problem is listed).",
    429: "The agent is out of a resource, e.g. the message is too large (RESOURCE_EXHAUSTED).",
    502: "The agent failed with another gRPC status.",
    503: "The gateway is at its concurrency limit (`overloaded`, refused before the body is "
    "read), no Workflow Agent is ready, or the agent answered UNAVAILABLE; with Retry-After.",
    504: "The request's deadline (X-Request-Timeout, at most GATEWAY_REQUEST_TIMEOUT_SECONDS) "
    "passed: before the agent call started (never sent), or during it (DEADLINE_EXCEEDED).",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these statuses, each with the ErrorBody schema."""
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in statuses}
