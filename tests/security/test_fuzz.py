"""Fuzzing (gRPC side): settings values and malformed protobuf bytes.

Each campaign counts the cases it ran and prints them (``pytest -s`` shows
them; the numbers are quoted in docs/security.md). A case fails the test if
settings raise anything but a ConfigError naming the variable, or if the
agent answers anything but OK / INVALID_ARGUMENT, stops, or logs a traceback.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ecsgrpc.config import ServerSettings, env_names, load
from ecsgrpc.errors import ConfigError
from ecsgrpc.security.client import ChannelSecurity
from ecsgrpc.security.settings import ClientSecuritySettings
from ecsgrpc.server import server_options
from ecsgrpc.server.security import server_security
from ecsgrpc_apps.workflow import pb2
from ecsgrpc_apps.workflow.client import build_request
from ecsgrpc_apps.workflow.settings import AgentSettings
from tests.support.agents import AgentProcess

pytestmark = pytest.mark.timeout(300)

COUNTS: Counter[str] = Counter()


def _env_names(cls: type, prefix: str) -> list[str]:
    names = list(env_names(cls).values())
    assert all(name.startswith(prefix) for name in names)
    return names


SERVER_VARS = _env_names(ServerSettings, "GRPC_")
CLIENT_VARS = _env_names(ClientSecuritySettings, "WORKFLOW_SERVICE_")
AGENT_VARS = _env_names(AgentSettings, "AGENT_")

# Environment values: no NUL (an environment cannot hold one), no lone surrogates.
_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
VALUES = st.one_of(
    st.text(_chars, max_size=80),
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1e309",
            "nan",
            "inf",
            "-inf",
            "true",
            "null",
            "None",
            "[]",
            "{}",
            '{"a": 1}',
            "0x10",
            "1_000",
            "65536",
            "99999999999999999999",
            ".",
            "/",
            "/dev/zero",
            "/dev/stdin",
            "/tmp",
            "/etc/passwd",
            "/proc/self/environ",
            "x" * 5000,
            "a" * 16,
            "DEBUG",
            "127.0.0.1",
            "::1",
            "[::1]",
        ]
    ),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


def _build(name: str) -> None:
    """Everything a process does with a variable at start (files read, token checked)."""
    if name.startswith("GRPC_"):
        server_settings = load(ServerSettings)
        server_security(server_settings)
        server_options(server_settings)
    elif name.startswith("WORKFLOW_SERVICE_"):
        ChannelSecurity(load(ClientSecuritySettings).to_security())
    else:
        load(AgentSettings)


def _check_one(name: str, value: str) -> None:
    COUNTS["settings"] += 1
    with _env(name, value):
        try:
            _build(name)
        except ConfigError as exc:
            message = str(exc)
            assert name in message, (name, value, message)
            if "TOKEN" in name and not name.endswith("_FILE") and len(value.strip()) >= 16:
                assert value not in message, "a token value leaked into an error"
            COUNTS["settings_refused"] += 1


@pytest.mark.parametrize(
    "names", [SERVER_VARS, CLIENT_VARS, AGENT_VARS], ids=["server", "client", "agent"]
)
def test_any_value_of_any_variable_is_valid_or_a_config_error_naming_it(
    names: list[str],
) -> None:
    before = COUNTS["settings"]

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(name=st.sampled_from(names), value=VALUES)
    @example(name=names[0], value="/dev/zero")
    def check(name: str, value: str) -> None:
        _check_one(name, value)

    check()
    ran = COUNTS["settings"] - before
    print(f"\nfuzz settings[{names[0].split('_')[0]}]: {ran} cases, 0 unexpected exceptions")
    assert ran >= 400


@pytest.mark.parametrize("names", [SERVER_VARS, CLIENT_VARS], ids=["server", "client"])
def test_several_variables_at_once_give_settings_or_a_config_error_naming_one(
    names: list[str],
) -> None:
    """Combinations (a certificate with a random key path, a CA without a
    certificate, ...): valid, or a ConfigError naming one of the variables set."""
    before = COUNTS["settings_combined"]

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(assigned=st.dictionaries(st.sampled_from(names), VALUES, min_size=2, max_size=4))
    def check(assigned: dict[str, str]) -> None:
        COUNTS["settings_combined"] += 1
        old = {k: os.environ.get(k) for k in assigned}
        os.environ.update(assigned)
        try:
            _build(next(iter(assigned)))
        except ConfigError as exc:
            assert any(k in str(exc) for k in assigned), (assigned, str(exc))
        finally:
            for k, v in old.items():
                if v is None:
                    del os.environ[k]
                else:
                    os.environ[k] = v

    check()
    ran = COUNTS["settings_combined"] - before
    print(f"\nfuzz settings combined[{names[0].split('_')[0]}]: {ran} cases, 0 unexpected")
    assert ran >= 300


# -- Malformed protobuf bytes sent to a real agent process -------------------------------

METHOD = "/workflow.v1.WorkflowAgent/ProcessConversation"
ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
_valid = build_request("c-1", [("system", "be brief"), ("user", "hello fuzzy world")])
VALID_BYTES = _valid.SerializeToString()


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A valid request with bytes flipped, cut, or inserted (the worst kind: nearly valid)."""
    data = bytearray(VALID_BYTES)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@st.composite
def _structured(draw: st.DrawFn) -> bytes:
    """Well-formed requests with hostile field values (roles, huge or odd content)."""
    messages = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["user", "system", "assistant", "", "USER", "\u0000"]),
                st.text(max_size=200),
            ),
            max_size=8,
        )
    )
    metadata = draw(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3))
    return build_request(draw(st.text(max_size=40)), messages, metadata).SerializeToString()


PAYLOADS = st.one_of(st.binary(max_size=2048), _mutated(), _structured())


@pytest.mark.timeout(600)
def test_malformed_protobuf_never_crashes_the_agent(
    agents: Callable[..., AgentProcess],
) -> None:
    agent = agents("127.0.0.6", env={"AGENT_MAX_CONTENT_CHARS": "150"})
    loop = asyncio.new_event_loop()
    channel = loop.run_until_complete(_open(agent.address))
    codes: Counter[str] = Counter()
    call = channel.unary_stream(METHOD)  # identity (de)serializers: raw bytes both ways

    async def send(payload: bytes) -> grpc.StatusCode:
        try:
            async for _ in call(payload, timeout=5):
                pass
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(payload=PAYLOADS)
    @example(payload=b"")
    @example(payload=b"\x0a\xff\xff\xff\xff\x0f")  # a length far beyond the buffer
    @example(payload=b"\x12" + b"\xff" * 10)  # a varint that never ends
    def check(payload: bytes) -> None:
        code = loop.run_until_complete(send(payload))
        codes[code.name] += 1
        assert code in ALLOWED, (code, payload)

    try:
        check()
        # Still alive and still serving a good call.
        assert agent.running()
        good = [
            pb2.ConversationEvent.FromString(raw)
            for raw in loop.run_until_complete(_collect(call, VALID_BYTES))
        ]
        assert good[-1].kind == pb2.ConversationEvent.KIND_COMPLETE
    finally:
        loop.run_until_complete(channel.close())
        loop.close()
    total = sum(codes.values())
    print(f"\nfuzz protobuf: {total} cases: {dict(codes)}; agent alive, good call served")
    assert "Traceback" not in agent.log_text()
    assert total >= 1000
    assert codes["INVALID_ARGUMENT"] > 0 and codes["OK"] > 0


async def _open(address: str) -> grpc.aio.Channel:
    channel = grpc.aio.insecure_channel(address)
    await channel.channel_ready()
    return channel


async def _collect(call: grpc.aio.UnaryStreamMultiCallable, payload: bytes) -> list[bytes]:
    return [raw async for raw in call(payload, timeout=5)]
