"""Every 4xx the gateway itself answers: clear ErrorBody, never a 500, never a traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.gateway.support import RunningGateway, conversation, running_gateway

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def gw() -> AsyncIterator[RunningGateway]:
    # No agents: none of these requests may reach the upstream call.
    async with running_gateway(max_body_bytes=1024, max_messages=3) as running:
        yield running


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert "Traceback" not in response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["status"] == status
    assert error["code"] == code, error
    assert error["message"]
    return error


async def test_bad_json_is_400_naming_the_position(gw: RunningGateway) -> None:
    async with gw.http() as http:
        response = await http.post(
            "/v1/conversations",
            content=b'{"messages": [',
            headers={"content-type": "application/json"},
        )
    error = _error(response, 400, "bad_json")
    assert "not valid JSON" in error["message"]
    assert "at character" in error["message"]


async def test_a_body_over_the_limit_is_413_by_content_length(gw: RunningGateway) -> None:
    big = conversation("x" * 2000)
    async with gw.http() as http:
        response = await http.post("/v1/conversations", json=big)
    error = _error(response, 413, "body_too_large")
    assert "the limit is 1024" in error["message"]


async def test_a_chunked_body_over_the_limit_is_413_while_streaming(gw: RunningGateway) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(20):
            sent += 100
            yield b"y" * 100
        yield b'"}]}'

    async with gw.http() as http:
        response = await http.post(
            "/v1/conversations", content=chunks(), headers={"content-type": "application/json"}
        )
    assert "content-length" not in response.request.headers  # really chunked
    error = _error(response, 413, "body_too_large")
    assert "over the limit of 1024 bytes" in error["message"]


async def test_a_body_just_under_the_limit_passes_the_size_check(gw: RunningGateway) -> None:
    # Valid size, then 503: proof the size check let it through to the upstream call.
    async with gw.http() as http:
        response = await http.post("/v1/conversations", json=conversation("x" * 900))
    _error(response, 503, "no_endpoint")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_a_non_json_content_type_is_415(gw: RunningGateway, content_type: str) -> None:
    async with gw.http() as http:
        response = await http.post(
            "/v1/conversations",
            content=b'{"messages": [{"role": "user", "content": "hi"}]}',
            headers={"content-type": content_type},
        )
    error = _error(response, 415, "unsupported_media_type")
    assert content_type in error["message"]


@pytest.mark.parametrize(
    ("body", "location", "words"),
    [
        ({}, "body.messages", "Field required"),
        ({"messages": []}, "body.messages", "at least 1 item"),
        ({"messages": "hello"}, "body.messages", "valid array"),
        ({"messages": [{"role": "user"}]}, "body.messages.0.content", "Field required"),
        ({"messages": [{"role": "user", "content": 5}]}, "body.messages.0.content", "string"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "body.messages.0.role", "'user'"),
        ({**conversation("hi"), "conversation_id": 7}, "body.conversation_id", "string"),
        ({**conversation("hi"), "metadata": {"k": 1}}, "body.metadata.k", "string"),
        ({**conversation("hi"), "mesages": []}, "body.mesages", "Extra inputs"),
        ([1, 2], "body", "an object"),
        (
            conversation("hi", role="assistant"),
            "body",
            "at least one message must have role 'user'",
        ),
    ],
)
async def test_an_invalid_conversation_is_422_naming_the_field(
    gw: RunningGateway, body: Any, location: str, words: str
) -> None:
    async with gw.http() as http:
        response = await http.post("/v1/conversations", json=body)
    error = _error(response, 422, "invalid_request")
    problems = {p["location"]: p["message"] for p in error["problems"]}
    assert location in problems, problems
    assert words in problems[location]
    assert location in error["message"]


async def test_content_over_the_agents_limit_is_422_before_any_upstream_call() -> None:
    async with running_gateway() as gw, gw.http() as http:
        response = await http.post("/v1/conversations", json=conversation("y" * 16385))
    error = _error(response, 422, "invalid_request")
    problems = {p["location"]: p["message"] for p in error["problems"]}
    assert "at most 16384 characters" in problems["body.messages.0.content"]


async def test_an_empty_body_is_422_asking_for_a_json_object(gw: RunningGateway) -> None:
    async with gw.http() as http:
        response = await http.post(
            "/v1/conversations", content=b"", headers={"content-type": "application/json"}
        )
    error = _error(response, 422, "invalid_request")
    assert "a JSON object is required" in error["message"]


async def test_too_many_messages_is_422(gw: RunningGateway) -> None:
    body = {"messages": [{"role": "user", "content": str(i)} for i in range(4)]}
    async with gw.http() as http:
        response = await http.post("/v1/conversations", json=body)
    error = _error(response, 422, "too_many_messages")
    assert "4 messages; the limit is 3" in error["message"]


async def test_unknown_routes_and_methods_get_error_bodies(gw: RunningGateway) -> None:
    async with gw.http() as http:
        missing = await http.get("/v1/nothing")
        wrong = await http.get("/v1/conversations")
    _error(missing, 404, "not_found")
    _error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"] == "POST"
