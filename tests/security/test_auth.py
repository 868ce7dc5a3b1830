"""Bearer-token caller authentication: server interceptor, client metadata, settings."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ecsgrpc.config import ServerSettings
from ecsgrpc.endpoints import Endpoint
from ecsgrpc.errors import ConfigError
from ecsgrpc.security.client import ClientSecurity
from ecsgrpc.security.settings import client_security_from_env
from ecsgrpc.security.tokens import BearerToken, check_token
from ecsgrpc.server import Server
from ecsgrpc.server.auth import AuthInterceptor
from ecsgrpc.testing import ManualResolver
from ecsgrpc_apps.workflow import pb2, pb2_grpc
from ecsgrpc_apps.workflow.agent import WorkflowAgentServicer, agent_service
from ecsgrpc_apps.workflow.client import WorkflowClient, build_request
from tests.support.secure import balanced, health_check, secure_server

pytestmark = pytest.mark.timeout(60)
TOKEN = "s3cr3t-Token-0123456789abcdef"
UNAUTH = grpc.StatusCode.UNAUTHENTICATED


async def _describe(address: str, metadata: tuple[tuple[str, str], ...] | None) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        info = await pb2_grpc.WorkflowAgentStub(channel).DescribeAgent(
            pb2.DescribeAgentRequest(), metadata=metadata, timeout=5
        )
        return str(info.instance_id)


async def _code(address: str, metadata: tuple[tuple[str, str], ...] | None) -> grpc.StatusCode:
    try:
        await _describe(address, metadata)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_the_right_token_is_admitted_and_anything_else_is_unauthenticated() -> None:
    async with secure_server("127.0.0.2", auth_token=TOKEN) as server:
        address = server.address
        assert await _describe(address, (("authorization", f"Bearer {TOKEN}"),)) == "127.0.0.2"
        assert await _code(address, None) is UNAUTH
        assert await _code(address, (("authorization", f"Bearer {TOKEN[:-1]}x"),)) is UNAUTH
        assert await _code(address, (("authorization", f"Bearer {TOKEN[:-1]}"),)) is UNAUTH
        assert await _code(address, (("authorization", f"bearer {TOKEN}"),)) is UNAUTH
        assert await _code(address, (("authorization", TOKEN),)) is UNAUTH
        assert await _code(address, (("x-token", TOKEN),)) is UNAUTH
        two = (
            ("authorization", f"Bearer {TOKEN}"),
            ("authorization", "Bearer other-token-xxxxxxxx"),
        )
        assert await _code(address, two) is UNAUTH
        assert server.security.auth is not None
        assert server.security.auth.rejected == 7


async def test_a_stream_without_the_token_is_unauthenticated_with_a_clear_message() -> None:
    async with secure_server("127.0.0.2", auth_token=TOKEN) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            call = pb2_grpc.WorkflowAgentStub(channel).ProcessConversation(
                build_request("c1", [("user", "hello there")]), timeout=5
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in call:
                    pass
    assert caught.value.code() is UNAUTH
    assert "missing authorization metadata" in (caught.value.details() or "")


async def test_unauthenticated_request_bytes_are_never_parsed() -> None:
    async with secure_server("127.0.0.2", auth_token=TOKEN) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            raw = channel.unary_stream("/workflow.v1.WorkflowAgent/ProcessConversation")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in raw(b"\xff\xff\xff not protobuf", timeout=5):
                    pass
    assert caught.value.code() is UNAUTH


async def test_health_stays_open_and_reflection_needs_the_token() -> None:
    async with secure_server("127.0.0.2", auth_token=TOKEN) as server:
        assert await health_check(server.address) == 1  # ECS health checks carry no token
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in stub.ServerReflectionInfo(iter([request]), timeout=5):
                    pass
            assert caught.value.code() is UNAUTH
            answers = stub.ServerReflectionInfo(
                iter([request]), metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=5
            )
            names = [s.name async for a in answers for s in a.list_services_response.service]
    assert "workflow.v1.WorkflowAgent" in names


async def test_balanced_channel_sends_the_token_on_every_call_kind() -> None:
    security = ClientSecurity(token=BearerToken(TOKEN))
    async with secure_server("127.0.0.2", auth_token=TOKEN) as server:
        async with balanced(server.address, security=security) as channel:
            stub = pb2_grpc.WorkflowAgentStub(channel)
            info = await stub.DescribeAgent(pb2.DescribeAgentRequest(), timeout=5)
            events = [
                e
                async for e in stub.ProcessConversation(
                    build_request("c1", [("user", "a b c")]), timeout=5
                )
            ]
            # The caller's own authorization wins over the channel's.
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.DescribeAgent(
                    pb2.DescribeAgentRequest(),
                    metadata=(("authorization", "Bearer caller-supplied-wrong-1"),),
                    timeout=5,
                )
    assert info.instance_id == "127.0.0.2"
    assert [e.kind for e in events][-1] == pb2.ConversationEvent.KIND_COMPLETE
    assert caught.value.code() is UNAUTH


async def test_token_from_a_file_with_a_trailing_newline(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    async with secure_server("127.0.0.2", auth_token_file=token_file) as server:
        assert await _describe(server.address, (("authorization", f"Bearer {TOKEN}"),))
        assert await _code(server.address, None) is UNAUTH


async def test_a_custom_interceptor_plugs_into_serve() -> None:
    class RoleCheck(AuthInterceptor):
        def admit(self, method, metadata):  # type: ignore[no-untyped-def]
            return None if ("x-role", "gateway") in metadata else "role 'gateway' required"

    settings = ServerSettings(host="127.0.0.2", port=0, drain_seconds=0, grace_seconds=0.5)
    server = Server(
        [agent_service(WorkflowAgentServicer())], settings=settings, interceptors=[RoleCheck()]
    )
    await server.start()
    try:
        assert await _code(server.address, (("x-role", "gateway"),)) is grpc.StatusCode.OK
        assert await _code(server.address, (("x-role", "intruder"),)) is UNAUTH
    finally:
        await server.shutdown()


async def test_rejections_are_logged_without_the_token_and_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with secure_server("127.0.0.2", auth_token=TOKEN) as server:
        for _ in range(5):
            await _code(server.address, (("authorization", f"Bearer {TOKEN}x"),))
    rejections = [r for r in caplog.records if getattr(r, "event", None) == "unauthenticated"]
    assert len(rejections) == 1
    assert "invalid bearer token" in rejections[0].getMessage()
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"auth_token": "short"}, "GRPC_AUTH_TOKEN: a token needs at least 16 characters"),
        ({"auth_token": "has a space in it ok"}, "visible ASCII"),
        ({"auth_token": "x" * 5000}, "at most 4096"),
        ({"auth_token": TOKEN, "auth_token_file": "FILE"}, "both set"),
        ({"auth_token_file": "MISSING"}, "GRPC_AUTH_TOKEN_FILE="),
        ({"auth_token_file": "EMPTY"}, "the file is empty"),
    ],
)
async def test_bad_token_settings_fail_at_start_without_quoting_the_token(
    tmp_path: Path, settings: dict[str, str], needle: str
) -> None:
    files = {"FILE": tmp_path / "t", "MISSING": tmp_path / "missing", "EMPTY": tmp_path / "e"}
    files["FILE"].write_text(TOKEN)
    files["EMPTY"].write_text("\n")
    given = {k: files.get(v, v) for k, v in settings.items()}
    with pytest.raises(ConfigError) as caught:
        async with secure_server("127.0.0.2", **given):
            pass
    assert needle in str(caught.value)
    assert TOKEN not in str(caught.value)
    if "auth_token" in settings and len(settings["auth_token"]) > 3:
        assert settings["auth_token"] not in str(caught.value)


def test_token_repr_and_str_never_show_it() -> None:
    token = check_token(TOKEN, setting="X")
    assert TOKEN not in repr(token)
    assert TOKEN not in str(token)
    assert TOKEN not in repr(ClientSecurity(token=token))
    settings = ServerSettings(auth_token=TOKEN)
    assert TOKEN not in repr(settings)


def test_client_security_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WORKFLOW_SERVICE_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("WORKFLOW_SERVICE_TLS_CA", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("WORKFLOW_SERVICE_TLS_SERVER_NAME", "agent.workflow.local")
    monkeypatch.setenv("WORKFLOW_SERVICE_TLS_CERT", "")  # empty counts as unset
    security = client_security_from_env()
    assert security.token == BearerToken(TOKEN)
    assert security.tls is not None
    assert security.tls.server_name == "agent.workflow.local"
    assert security.tls.cert is None
    monkeypatch.setenv("WORKFLOW_SERVICE_AUTH_TOKEN", "tiny")
    with pytest.raises(ConfigError) as caught:
        client_security_from_env()
    assert "WORKFLOW_SERVICE_AUTH_TOKEN" in str(caught.value)
    assert "tiny" not in str(caught.value)


async def test_workflow_client_takes_token_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLOW_SERVICE_AUTH_TOKEN", TOKEN)
    async with secure_server("127.0.0.2", auth_token=TOKEN) as server:
        resolver = ManualResolver([Endpoint("127.0.0.2", server.port)])
        async with WorkflowClient(resolver, connect_timeout=5) as client:  # type: ignore[arg-type]
            events = [
                e.kind
                async for e in client.process_conversation(build_request("c", [("user", "hi")]))
            ]
    assert events[-1] == pb2.ConversationEvent.KIND_COMPLETE
