"""Secrets hygiene: a full TLS + token run, then every log line, metrics sample and
error message is scanned for the token, the private keys and the AWS secret."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ecsgrpc.balancing.channel import BalancedChannel
from ecsgrpc.endpoints import Endpoint
from ecsgrpc.errors import EcsGrpcError
from ecsgrpc.security.client import ClientSecurity
from ecsgrpc.security.client_tls import ClientTls
from ecsgrpc.security.tokens import BearerToken
from ecsgrpc.testing import ManualResolver
from ecsgrpc_apps.workflow import pb2, pb2_grpc
from ecsgrpc_apps.workflow.client import build_request
from tests.support.agents import AgentProcess, wait_until
from tests.support.certs import CertAuthority, Issued, make_tls_files
from tests.support.secure import secure_server

pytestmark = pytest.mark.timeout(120)

TOKEN = "hygiene-Token-7f3a9c2e5b1d4068"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYFAKESECRETKEY"
AWS_SESSION = "FQoGZXIvYXdzEFAKESESSIONTOKENxyz0123456789"


def _secrets(*issued: Issued) -> dict[str, str]:
    found = {"token": TOKEN, "aws_secret": AWS_SECRET, "aws_session": AWS_SESSION}
    for item in issued:
        body_lines = item.key_pem.decode().strip().splitlines()[1:-1]
        for index, line in enumerate(body_lines):
            if len(line) >= 16:
                found[f"{item.name}.key line {index}"] = line
    return found


async def _calls(channel: BalancedChannel, errors: list[str]) -> int:
    stub = pb2_grpc.WorkflowAgentStub(channel)
    served = 0
    for i in range(6):
        await stub.DescribeAgent(pb2.DescribeAgentRequest(), timeout=5)
        async for _ in stub.ProcessConversation(
            build_request(f"c{i}", [("user", "a b")]), timeout=5
        ):
            served += 1
    bad = [
        build_request("bad", []),
        build_request("big", [("user", "x" * 20_000)]),
    ]
    for request in bad:
        try:
            async for _ in stub.ProcessConversation(request, timeout=5):
                pass
        except grpc.aio.AioRpcError as exc:
            errors += [str(exc), exc.details() or "", exc.debug_error_string() or ""]
    return served


async def _failing_channel(
    address: str, security: ClientSecurity | None, errors: list[str], registry: CollectorRegistry
) -> None:
    host, port = address.rsplit(":", 1)
    channel = BalancedChannel(
        ManualResolver([Endpoint(host, int(port))]),
        target=address,
        detect_ecs_zone=False,
        security=security,
        registry=registry,
        connect_timeout=2,
    )
    async with channel:
        await wait_until(
            lambda: any(e.last_error for e in channel.endpoints()) or channel.ready_count, 3
        )
        try:
            await pb2_grpc.WorkflowAgentStub(channel).DescribeAgent(
                pb2.DescribeAgentRequest(), timeout=3, wait_for_ready=False
            )
        except grpc.aio.AioRpcError as exc:
            errors += [str(exc), exc.details() or "", exc.debug_error_string() or ""]
        errors += [json.dumps([e.to_dict() for e in channel.endpoints()])]


def _probe(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ecsgrpc", "probe", *args],
        capture_output=True,
        text=True,
        timeout=20,
    )
    return result.stdout + result.stderr


async def test_no_secret_reaches_logs_metrics_or_errors(
    agents: Callable[..., AgentProcess],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", AWS_SESSION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
    files = make_tls_files(tmp_path / "pki", sans=["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    rotated = files.authority.issue("server-rotated", sans=["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    intruder = CertAuthority("intruder").issue("intruder", client=True)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(files.server_cert, live / "tls.crt")
    shutil.copy(files.server_key, live / "tls.key")
    env = {
        "GRPC_TLS_CERT": str(live / "tls.crt"),
        "GRPC_TLS_KEY": str(live / "tls.key"),
        "GRPC_TLS_CA": str(files.ca),
        "GRPC_LOG_JSON": "true",
        "GRPC_LOG_LEVEL": "DEBUG",
        "AGENT_MAX_CONTENT_CHARS": "1000",
    }
    a = agents("127.0.0.2", env={**env, "GRPC_AUTH_TOKEN": TOKEN})
    b = agents("127.0.0.3", env={**env, "GRPC_AUTH_TOKEN_FILE": str(token_file)})
    registry = CollectorRegistry()
    server_registry = CollectorRegistry()
    errors: list[str] = []
    good_tls = ClientTls(ca=files.ca, cert=files.client_cert, key=files.client_key)
    good = ClientSecurity(tls=good_tls, token=BearerToken(TOKEN))
    resolver = ManualResolver([Endpoint("127.0.0.2", a.port), Endpoint("127.0.0.3", b.port)])

    async with secure_server(
        "127.0.0.4",
        tls_cert=files.server_cert,
        tls_key=files.server_key,
        tls_ca=files.ca,
        auth_token=TOKEN,
        registry=server_registry,
    ) as local:
        resolver.update([*resolver.current, Endpoint("127.0.0.4", local.port)])
        async with BalancedChannel(
            resolver, target="hygiene", detect_ecs_zone=False, security=good, registry=registry
        ) as channel:
            assert await wait_until(lambda: channel.ready_count == 3, 10)
            served = await _calls(channel, errors)
            # Rotate the agents' certificate mid-run; they log the reload.
            (live / "tls.key.new").write_bytes(rotated.key_pem)
            (live / "tls.crt.new").write_bytes(rotated.cert_pem)
            (live / "tls.key.new").replace(live / "tls.key")
            (live / "tls.crt.new").replace(live / "tls.crt")
            served += await _calls(channel, errors)
        assert served > 0
        # Bad callers: wrong token, no token, plaintext, untrusted client certificate.
        wrong = ClientSecurity(tls=good_tls, token=BearerToken(TOKEN[::-1]))
        intruder_cert, intruder_key = intruder.write_to(tmp_path / "intruder")
        untrusted = ClientTls(ca=files.ca, cert=intruder_cert, key=intruder_key)
        for address in (a.address, local.address):
            await _failing_channel(address, wrong, errors, registry)
            await _failing_channel(address, ClientSecurity(tls=good_tls), errors, registry)
            await _failing_channel(address, None, errors, registry)
            await _failing_channel(address, ClientSecurity(tls=untrusted), errors, registry)
        # Bad settings: an invalid token and a key that does not match its certificate.
        for bad in (
            {"auth_token": TOKEN + " x"},
            {"tls_cert": files.server_cert, "tls_key": files.client_key},
        ):
            try:
                async with secure_server("127.0.0.5", **bad):
                    pass
            except EcsGrpcError as exc:
                errors.append(str(exc))
            else:
                raise AssertionError(f"{bad} was accepted")
        server_metrics_text = generate_latest(server_registry).decode()
    # A probe, good and bad. The agents look at their certificate files at most
    # once a second, on a new handshake: let that second pass so the probes'
    # handshakes load the rotated certificate (and log the reload).
    await asyncio.sleep(1.2)
    errors.append(
        _probe(
            a.address,
            "--tls",
            "--tls-ca-cert",
            str(files.ca),
            "--tls-client-cert",
            str(files.client_cert),
            "--tls-client-key",
            str(files.client_key),
        )
    )
    errors.append(_probe(a.address, "--timeout", "2"))
    errors.append(_probe(a.address, "--tls", "--tls-client-key", str(files.client_key)))

    agent_logs = a.log_text() + b.log_text()
    assert "TLS certificate reloaded" in agent_logs or await wait_until(
        lambda: "TLS certificate reloaded" in a.log_text() + b.log_text(), 3
    )
    agent_logs = a.log_text() + b.log_text()
    for line in agent_logs.splitlines():
        if line.startswith("{"):
            json.loads(line)  # JSON logs stay JSON
    haystacks = {
        "agent logs": agent_logs,
        "test-process logs": caplog.text,
        "client metrics": generate_latest(registry).decode(),
        "server metrics": server_metrics_text,
        "errors": "\n".join(errors),
    }
    assert "UNAUTHENTICATED" in haystacks["errors"]
    assert "TLS" in haystacks["errors"]
    assert "ecsgrpc_client" in haystacks["client metrics"]
    assert "UNAUTHENTICATED" in haystacks["server metrics"]
    secrets = _secrets(files.server, files.client, rotated, intruder)
    assert secrets["server.key line 0"] in files.server_key.read_text()  # the scan can see
    leaks = [
        f"{secret} in {where}"
        for where, text in haystacks.items()
        for secret, value in secrets.items()
        if value in text
    ]
    assert leaks == []
