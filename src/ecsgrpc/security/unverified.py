"""``-tls-no-verify`` for the probe: trust what the server presents.

grpcio has no switch to skip certificate verification, so the probe fetches
the certificate chain the server presents (standard library ``ssl``, without
verification), trusts it for this one check, and verifies the name the leaf
certificate carries. This works for self-signed certificates and for servers
that send their whole chain up to a self-signed root; a chain that stops below
its root still fails verification (give the CA with ``-tls-ca-cert``).
INSECURE by design, as grpc_health_probe's flag is.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import tempfile
from typing import Any

import grpc

from ecsgrpc.errors import ConfigError
from ecsgrpc.security.client_tls import ClientTls
from ecsgrpc.targets_util import parse_host_port

__all__ = ["presented_chain_credentials"]


def presented_chain_credentials(
    target: str, timeout: float, tls: ClientTls
) -> tuple[grpc.ChannelCredentials, list[tuple[str, Any]]]:
    """Credentials trusting the chain ``target`` presents now (one TLS handshake),
    and the channel options that verify the leaf's own name."""
    host, port = parse_host_port(target)
    chain = _presented_chain(host, port, timeout)
    if not chain:
        raise ConfigError(f"-tls-no-verify: {target} presented no certificate")
    roots = "".join(ssl.DER_cert_to_PEM_cert(der) for der in chain).encode()
    key = cert = None
    if tls.cert is not None and tls.key is not None:
        try:
            cert, key = tls.cert.read_bytes(), tls.key.read_bytes()
        except OSError as exc:
            raise ConfigError(f"-tls-client-cert/-tls-client-key: {exc}") from None
    name = leaf_name(chain[0])
    options = [] if name is None else [("grpc.ssl_target_name_override", name)]
    return grpc.ssl_channel_credentials(roots, key, cert), options


def leaf_name(der: bytes) -> str | None:
    """A name the certificate is valid for (first DNS or IP subjectAltName)."""
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as handle:
        handle.write(ssl.DER_cert_to_PEM_cert(der))
    try:
        decoded: dict[str, Any] = ssl._ssl._test_decode_cert(handle.name)  # type: ignore[attr-defined]
    except ssl.SSLError:
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
    for kind, value in decoded.get("subjectAltName", ()):
        if kind in ("DNS", "IP Address"):
            return str(value).strip()
    return None


def _presented_chain(host: str, port: int, timeout: float) -> list[bytes]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as conn,
        ):
            chain = conn._sslobj.get_unverified_chain()  # type: ignore[attr-defined]
            return [cert.public_bytes(ssl._ssl.ENCODING_DER) for cert in chain or ()]  # type: ignore[attr-defined]
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"-tls-no-verify: cannot read {host}:{port}'s certificate: {exc}"
        ) from None
