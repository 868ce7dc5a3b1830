"""TLS and mTLS end to end: in-process agents, the balanced channel, real certificates."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import grpc
import pytest

from ecsgrpc.endpoints import Endpoint
from ecsgrpc.errors import ConfigError, NoEndpointAvailable
from ecsgrpc.security.client import ClientSecurity
from ecsgrpc.security.client_tls import ClientTls
from ecsgrpc.testing import ManualResolver
from ecsgrpc_apps.workflow import pb2, pb2_grpc
from tests.support.agents import wait_until
from tests.support.certs import CertAuthority, make_tls_files
from tests.support.secure import balanced, health_check, secure_server

pytestmark = pytest.mark.timeout(60)
SERVING = 1


async def _describe(address: str, security: ClientSecurity | None, **kw: object) -> str:
    async with balanced(address, security=security, **kw) as channel:
        info = await pb2_grpc.WorkflowAgentStub(channel).DescribeAgent(
            pb2.DescribeAgentRequest(), timeout=5
        )
        return str(info.instance_id)


async def _failure(address: str, security: ClientSecurity | None) -> NoEndpointAvailable:
    """The error a call gets once the only endpoint has failed to connect."""
    async with balanced(address, security=security) as channel:
        assert await wait_until(lambda: any(e.last_error for e in channel.endpoints()), 5), (
            channel.endpoints()
        )
        with pytest.raises(NoEndpointAvailable) as caught:
            await pb2_grpc.WorkflowAgentStub(channel).DescribeAgent(
                pb2.DescribeAgentRequest(), timeout=5, wait_for_ready=False
            )
        return caught.value


async def test_tls_server_serves_a_client_that_trusts_its_ca(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path, sans=["127.0.0.2"])
    async with secure_server(
        "127.0.0.2", tls_cert=files.server_cert, tls_key=files.server_key
    ) as server:
        assert server.security.mode == "tls"
        tls = ClientSecurity(tls=ClientTls(ca=files.ca))
        assert await _describe(server.address, tls) == "127.0.0.2"


async def test_mtls_admits_a_trusted_client_certificate_only(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path, sans=["127.0.0.2"])
    stranger = CertAuthority("stranger").issue("intruder", client=True)
    stranger_cert, stranger_key = stranger.write_to(tmp_path / "stranger")
    async with secure_server(
        "127.0.0.2", tls_cert=files.server_cert, tls_key=files.server_key, tls_ca=files.ca
    ) as server:
        assert server.security.mode == "mtls"
        good = ClientTls(ca=files.ca, cert=files.client_cert, key=files.client_key)
        assert await _describe(server.address, ClientSecurity(tls=good)) == "127.0.0.2"

        no_cert = await _failure(server.address, ClientSecurity(tls=ClientTls(ca=files.ca)))
        assert no_cert.code() is grpc.StatusCode.UNAVAILABLE
        assert "client certificate" in str(no_cert)

        wrong = ClientTls(ca=files.ca, cert=stranger_cert, key=stranger_key)
        untrusted = await _failure(server.address, ClientSecurity(tls=wrong))
        assert "client certificate" in str(untrusted)


async def test_a_client_trusting_another_ca_is_refused_with_a_tls_message(
    tmp_path: Path,
) -> None:
    files = make_tls_files(tmp_path, sans=["127.0.0.2"])
    other = CertAuthority("other-ca").write_to(tmp_path / "other")
    async with secure_server(
        "127.0.0.2", tls_cert=files.server_cert, tls_key=files.server_key
    ) as server:
        error = await _failure(server.address, ClientSecurity(tls=ClientTls(ca=other)))
    assert "not signed by a trusted CA" in str(error)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)


async def test_an_expired_server_certificate_is_refused(tmp_path: Path) -> None:
    ca = CertAuthority()
    cert, key = ca.issue_expired("server", sans=["127.0.0.2"]).write_to(tmp_path)
    async with secure_server("127.0.0.2", tls_cert=cert, tls_key=key) as server:
        error = await _failure(
            server.address, ClientSecurity(tls=ClientTls(ca=ca.write_to(tmp_path)))
        )
    assert "expired" in str(error)


async def test_an_expired_client_certificate_is_refused_by_mtls(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path, sans=["127.0.0.2"])
    cert, key = files.authority.issue_expired("old-client").write_to(tmp_path / "old")
    async with secure_server(
        "127.0.0.2", tls_cert=files.server_cert, tls_key=files.server_key, tls_ca=files.ca
    ) as server:
        error = await _failure(
            server.address, ClientSecurity(tls=ClientTls(ca=files.ca, cert=cert, key=key))
        )
    assert "client certificate" in str(error)


async def test_plaintext_client_against_tls_server_says_tls(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path, sans=["127.0.0.2"])
    async with secure_server(
        "127.0.0.2", tls_cert=files.server_cert, tls_key=files.server_key
    ) as server:
        error = await _failure(server.address, None)
        with pytest.raises(grpc.aio.AioRpcError) as raw:  # a plain grpc channel fails too
            await health_check(server.address)
    assert "may require TLS" in str(error)
    assert "plaintext client against a TLS server" in str(error)
    assert raw.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_tls_client_against_plaintext_server_says_tls(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path, sans=["127.0.0.2"])
    async with secure_server("127.0.0.2") as server:
        assert server.security.mode == "plaintext"
        security = ClientSecurity(tls=ClientTls(ca=files.ca))
        async with balanced(server.address, security=security) as channel:
            assert await wait_until(lambda: any(e.last_error for e in channel.endpoints()), 5)
            status = channel.endpoints()[0]
            assert status.state == "transient_failure"
            assert "WRONG_VERSION_NUMBER" in (status.last_error or "")
        error = await _failure(server.address, security)
    assert "does not speak TLS" in str(error)


async def test_server_name_override_verifies_ip_endpoints_by_dns_name(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path, sans=["workflow-agent.workflow.local"])
    async with secure_server(
        "127.0.0.2", tls_cert=files.server_cert, tls_key=files.server_key
    ) as server:
        named = ClientTls(ca=files.ca, server_name="workflow-agent.workflow.local")
        assert await _describe(server.address, ClientSecurity(tls=named)) == "127.0.0.2"
        error = await _failure(server.address, ClientSecurity(tls=ClientTls(ca=files.ca)))
    assert "server name override" in str(error)


async def test_server_certificate_rotates_without_restart(tmp_path: Path) -> None:
    """Rewrite the served files with a certificate from a new CA: new connections
    get the new certificate; no restart; one reload counted."""
    live = tmp_path / "live"
    old = make_tls_files(tmp_path / "old", sans=["127.0.0.2"])
    new = make_tls_files(tmp_path / "new", sans=["127.0.0.2"], authority=CertAuthority("new-ca"))
    live.mkdir()
    cert, key = live / "tls.crt", live / "tls.key"
    shutil.copy(old.server_cert, cert)
    shutil.copy(old.server_key, key)
    old_ca = grpc.ssl_channel_credentials(old.authority.cert_pem)
    new_ca = grpc.ssl_channel_credentials(new.authority.cert_pem)
    async with secure_server("127.0.0.2", tls_cert=cert, tls_key=key) as server:
        assert await health_check(server.address, old_ca) == SERVING
        # A rotation: written to temporary names, then renamed over (atomic).
        shutil.copy(new.server_key, live / "tls.key.tmp")
        shutil.copy(new.server_cert, live / "tls.crt.tmp")
        (live / "tls.key.tmp").replace(key)
        (live / "tls.crt.tmp").replace(cert)

        async def serves_new_cert() -> bool:
            try:
                return await health_check(server.address, new_ca) == SERVING
            except grpc.aio.AioRpcError:
                return False

        assert await wait_until(serves_new_cert, 10, interval=0.2)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_check(server.address, old_ca)
        assert "CERTIFICATE_VERIFY_FAILED" in (caught.value.details() or "")
        assert server.security.reloader is not None
        assert server.security.reloader.reloads == 1


async def test_a_broken_rotation_keeps_the_current_certificate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = make_tls_files(tmp_path, sans=["127.0.0.2"])
    trusted = grpc.ssl_channel_credentials(files.authority.cert_pem)
    async with secure_server(
        "127.0.0.2", tls_cert=files.server_cert, tls_key=files.server_key
    ) as server:
        files.server_cert.write_text("-----BEGIN CERTIFICATE-----\nbroken\n")
        await asyncio.sleep(1.2)  # past the reloader's check interval
        for _ in range(3):  # new connections still get the old, valid certificate
            assert await health_check(server.address, trusted) == SERVING
        assert server.security.reloader is not None
        assert server.security.reloader.reloads == 0
    assert "not valid, keeping the current one" in caplog.text
    assert files.server.key_body not in caplog.text


async def test_new_subchannels_use_rotated_client_files(tmp_path: Path) -> None:
    """Client-side rotation: a subchannel created after the CA file changed uses
    the new file; the subchannel made before keeps its credentials."""
    files = make_tls_files(tmp_path, sans=["127.0.0.2", "127.0.0.3"])
    ca_file = tmp_path / "client-ca.crt"
    ca_file.write_bytes(CertAuthority("not-the-servers").cert_pem)
    security = ClientSecurity(tls=ClientTls(ca=ca_file))
    async with (
        secure_server("127.0.0.2", tls_cert=files.server_cert, tls_key=files.server_key) as a,
        secure_server("127.0.0.3", tls_cert=files.server_cert, tls_key=files.server_key) as b,
        balanced(a.address, security=security) as channel,
    ):
        assert await wait_until(lambda: any(e.last_error for e in channel.endpoints()), 5)
        ca_file.write_bytes(files.authority.cert_pem)
        resolver = channel._resolver
        assert isinstance(resolver, ManualResolver)
        resolver.update([Endpoint("127.0.0.2", a.port), Endpoint("127.0.0.3", b.port)])
        assert await wait_until(lambda: channel.ready_count == 1, 5)
        by_address = {e.address: e for e in channel.endpoints()}
        assert by_address[b.address].pickable
        assert not by_address[a.address].pickable


@pytest.mark.parametrize(
    ("settings", "needles"),
    [
        ({"tls_cert": "MISSING"}, ["GRPC_TLS_CERT is set but GRPC_TLS_KEY is not"]),
        ({"tls_ca": "CA"}, ["GRPC_TLS_CA is set but"]),
        ({"tls_cert": "NOFILE", "tls_key": "KEY"}, ["GRPC_TLS_CERT=", "nofile.crt", "cannot read"]),
        ({"tls_cert": "GARBAGE", "tls_key": "KEY"}, ["GRPC_TLS_CERT=", "garbage.crt", "not a PEM"]),
        ({"tls_cert": "CERT", "tls_key": "OTHERKEY"}, ["GRPC_TLS_KEY=", "other.key", "matching"]),
        ({"tls_cert": "CERT", "tls_key": "ENCRYPTED"}, ["encrypted"]),
        (
            {"tls_cert": "CERT", "tls_key": "KEY", "tls_ca": "GARBAGE"},
            ["GRPC_TLS_CA=", "not a PEM CA"],
        ),
        ({"tls_cert": "CERT", "tls_key": "KEY", "tls_ca": "EMPTY"}, ["GRPC_TLS_CA=", "empty"]),
    ],
)
async def test_bad_tls_files_fail_at_start_naming_the_variable_and_file(
    tmp_path: Path, settings: dict[str, str], needles: list[str]
) -> None:
    from cryptography.hazmat.primitives import serialization

    from tests.support.certs import CertAuthority as CA

    ca = CA()
    issued = ca.issue("server", sans=["127.0.0.2"])
    cert, key = issued.write_to(tmp_path)
    other_key = ca.issue("other").write_to(tmp_path)[1]
    garbage = tmp_path / "garbage.crt"
    garbage.write_text(
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n"
    )
    empty = tmp_path / "empty.pem"
    empty.write_text("\n")
    encrypted = tmp_path / "encrypted.key"
    private = serialization.load_pem_private_key(issued.key_pem, None)
    encrypted.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    paths = {
        "CERT": cert,
        "KEY": key,
        "OTHERKEY": other_key,
        "MISSING": cert,
        "CA": ca.write_to(tmp_path),
        "NOFILE": tmp_path / "nofile.crt",
        "GARBAGE": garbage,
        "EMPTY": empty,
        "ENCRYPTED": encrypted,
    }
    with pytest.raises(ConfigError) as caught:
        async with secure_server("127.0.0.2", **{k: paths[v] for k, v in settings.items()}):
            pass
    for needle in needles:
        assert needle in str(caught.value)
    assert issued.key_body not in str(caught.value)
