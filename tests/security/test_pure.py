"""Pure parts: TLS error hints, token rules, PEM file checks, metadata merging."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecsgrpc.config import ServerSettings
from ecsgrpc.errors import ConfigError
from ecsgrpc.security.client import MetadataChannel
from ecsgrpc.security.diagnose import explain_connect_error, last_error
from ecsgrpc.security.pem import MAX_FILE_BYTES, KeyPair, SettingFile, read_bytes
from ecsgrpc.security.tokens import token_from, token_problem
from ecsgrpc.server.tls import server_tls_files

pytestmark = pytest.mark.timeout(30)

PREFIX = "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.2:5000: "


@pytest.mark.parametrize(
    ("details", "tls", "needle"),
    [
        (
            "Tls handshake failed (TSI_PROTOCOL_FAILURE): WRONG_VERSION_NUMBER",
            True,
            "does not speak TLS",
        ),
        ("CERTIFICATE_VERIFY_FAILED: certificate has expired", True, "has expired"),
        ("CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate", True, "trusted CA"),
        (
            "Custom verification check failed: Hostname Verification Check failed.",
            True,
            "server name",
        ),
        ("Socket closed", False, "may require TLS"),
        ("Socket closed", True, "client certificate"),
    ],
)
def test_connect_errors_get_a_hint(details: str, tls: bool, needle: str) -> None:
    hint = explain_connect_error(PREFIX + details, tls=tls)
    assert hint is not None and needle in hint


def test_errors_that_are_not_about_tls_get_no_hint() -> None:
    assert explain_connect_error(PREFIX + "Connection refused", tls=True) is None
    assert explain_connect_error("Deadline Exceeded", tls=False) is None


def test_last_error_keeps_the_useful_tail() -> None:
    assert last_error(PREFIX + "Socket closed: OK") == "UNKNOWN: ipv4:127.0.0.2:5000: Socket closed"
    assert last_error("plain text") == "plain text"


@given(st.text(max_size=300), st.booleans())
@settings(max_examples=300)
def test_hints_never_fail(details: str, tls: bool) -> None:
    hint = explain_connect_error(details, tls=tls)
    assert hint is None or "TLS" in hint or "server" in hint
    assert isinstance(last_error(details), str)


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("a" * 15, "at least 16"),
        ("a" * 4097, "at most 4096"),
        ("a" * 15 + " ", "visible ASCII"),
        ("a" * 15 + "\u00e9", "visible ASCII"),
        ("a" * 15 + "\n", "visible ASCII"),
    ],
)
def test_token_rules(token: str, problem: str) -> None:
    found = token_problem(token)
    assert found is not None and problem in found
    assert token not in found


def test_good_tokens_and_files(tmp_path: Path) -> None:
    assert token_problem("A-good_token.0123456789~") is None
    crlf = tmp_path / "t"
    crlf.write_bytes(b"0123456789abcdefXYZ\r\n")
    token = token_from(None, crlf, value_setting="V", file_setting="F")
    assert token is not None and token.secret == "0123456789abcdefXYZ"
    binary = tmp_path / "b"
    binary.write_bytes(b"\xff" * 20)
    with pytest.raises(ConfigError, match="not ASCII"):
        token_from(None, binary, value_setting="V", file_setting="F")
    assert token_from(None, None, value_setting="V", file_setting="F") is None


def test_pem_reads_refuse_devices_directories_and_huge_files(tmp_path: Path) -> None:
    big = tmp_path / "big.pem"
    big.write_bytes(b"x" * (MAX_FILE_BYTES + 1))
    for path, needle in [
        (Path("/dev/zero"), "not a regular file"),
        (tmp_path, "not a regular file"),
        (big, "larger than"),
        (tmp_path / "none", "No such file"),
    ]:
        with pytest.raises(ConfigError) as caught:
            read_bytes(SettingFile("GRPC_TLS_CERT", path))
        assert needle in str(caught.value)
        assert "GRPC_TLS_CERT=" in str(caught.value)


def test_key_pair_repr_hides_the_key() -> None:
    assert "SECRET" not in repr(KeyPair(b"cert", b"SECRET"))


def test_server_tls_files_need_cert_and_key_together() -> None:
    assert server_tls_files(None, None, None) is None
    with pytest.raises(ConfigError, match="GRPC_TLS_KEY is set but GRPC_TLS_CERT is not"):
        server_tls_files(None, Path("k"), None)
    files = server_tls_files(Path("c"), Path("k"), Path("ca"))
    assert files is not None and files.mutual


def test_empty_security_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GRPC_TLS_CERT", "GRPC_TLS_KEY", "GRPC_TLS_CA", "GRPC_AUTH_TOKEN"):
        monkeypatch.setenv(name, "")
    settings_ = ServerSettings()
    assert settings_.tls_cert is None and settings_.auth_token is None


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[object] = []

    def unary_unary(self, method: str, **kw: object) -> object:
        def call(request: object, *, metadata: object = None, **rest: object) -> object:
            self.calls.append(metadata)
            return request

        return call


def test_metadata_channel_adds_and_never_overrides() -> None:
    inner = _Recorder()
    channel = MetadataChannel(inner, (("authorization", "Bearer t"),))
    call = channel.unary_unary("/m")
    call(b"1")
    call(b"2", metadata=(("x-a", "1"),))
    call(b"3", metadata=(("authorization", "Bearer mine"),))
    assert inner.calls == [
        (("authorization", "Bearer t"),),
        (("x-a", "1"), ("authorization", "Bearer t")),
        (("authorization", "Bearer mine"),),
    ]
