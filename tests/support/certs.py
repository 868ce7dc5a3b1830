"""Certificates made at test time with ``cryptography``: CAs, server and client leaves.

Keys are EC P-256 (fast to generate). ``CertAuthority("test-ca").issue("server",
sans=["127.0.0.2"])`` gives an :class:`Issued` with PEM bytes; ``write_to(dir)``
writes ``NAME.crt``/``NAME.key`` and returns their paths. Expired and
not-yet-valid certificates come from ``not_before``/``not_after``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertAuthority", "Issued", "TlsFiles", "make_tls_files"]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, PEM encoded."""

    name: str
    cert_pem: bytes
    key_pem: bytes

    def write_to(self, directory: Path) -> tuple[Path, Path]:
        """Write ``NAME.crt`` and ``NAME.key`` (mode 0600) into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        cert = directory / f"{self.name}.crt"
        key = directory / f"{self.name}.key"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        key.chmod(0o600)
        return cert, key

    @property
    def key_body(self) -> str:
        """The base64 body of the key (no armour lines): what a leak would contain."""
        lines = self.key_pem.decode().strip().splitlines()
        return "".join(lines[1:-1])


class CertAuthority:
    """A self-signed CA that issues leaf certificates."""

    def __init__(self, name: str = "ecsgrpc-test-ca") -> None:
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        self._subject = subject
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def write_to(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.name}.crt"
        path.write_bytes(self.cert_pem)
        return path

    def issue(
        self,
        name: str,
        *,
        sans: list[str] | None = None,
        client: bool = False,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Issued:
        """A leaf for ``name`` (CN and, unless ``sans`` is given, the only SAN).

        ``client=True`` marks it for client authentication, else for servers.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(minutes=5))
            .not_valid_after(not_after or now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(_san(sans or [name]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return Issued(name, cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def issue_expired(self, name: str, *, sans: list[str] | None = None) -> Issued:
        now = _now()
        return self.issue(
            name,
            sans=sans,
            not_before=now - dt.timedelta(days=3),
            not_after=now - dt.timedelta(days=1),
        )


@dataclass(frozen=True)
class TlsFiles:
    """Paths of a CA, a server leaf and a client leaf written to one directory."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    authority: CertAuthority
    server: Issued
    client: Issued


def make_tls_files(
    directory: Path, *, sans: list[str], authority: CertAuthority | None = None
) -> TlsFiles:
    """A CA plus a server certificate for ``sans`` and a client certificate, on disk."""
    ca = authority or CertAuthority()
    server = ca.issue("server", sans=sans)
    client = ca.issue("client", client=True)
    server_cert, server_key = server.write_to(directory)
    client_cert, client_key = client.write_to(directory)
    return TlsFiles(
        ca=ca.write_to(directory),
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
        authority=ca,
        server=server,
        client=client,
    )
