"""Server TLS and mTLS from files, re-read when they change (no restart).

``GRPC_TLS_CERT`` + ``GRPC_TLS_KEY`` turn TLS on; adding ``GRPC_TLS_CA`` makes
the server require client certificates signed by that CA (mTLS).

Rotation: the credentials are ``grpc.dynamic_ssl_server_credentials``. gRPC
core asks :meth:`CertificateReloader.fetch` for the current configuration at
each new TLS handshake (on a core thread, not the event loop). ``fetch``
looks at the files' ``stat`` at most once per ``check_interval`` seconds and,
when one changed (mtime, size or inode: a rewrite or a symlink swap), reads
and checks them again. New connections then get the new certificate and CA;
connections already open keep the old ones until they close (set
``GRPC_MAX_CONNECTION_AGE_SECONDS`` to bound that). Files that are invalid
after a change (a rotation half-written) are refused with a warning and the
previous certificate stays in use; the next change is tried again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from ecsgrpc.errors import ConfigError
from ecsgrpc.security.pem import (
    KeyPair,
    SettingFile,
    fingerprint,
    read_ca_bundle,
    read_key_pair,
)

__all__ = ["CertificateReloader", "ServerTlsFiles", "server_tls_files"]

log = logging.getLogger(__name__)

DEFAULT_CHECK_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class ServerTlsFiles:
    """Where a server's certificate, key and (for mTLS) client CA live."""

    cert: SettingFile
    key: SettingFile
    ca: SettingFile | None = None

    @property
    def mutual(self) -> bool:
        return self.ca is not None

    def files(self) -> tuple[SettingFile, ...]:
        return (self.cert, self.key) if self.ca is None else (self.cert, self.key, self.ca)


def server_tls_files(
    cert: Path | None, key: Path | None, ca: Path | None, *, prefix: str = "GRPC_"
) -> ServerTlsFiles | None:
    """The TLS files from settings, or None for plaintext.

    Raises ConfigError naming the variables when only some are given (a key
    without a certificate, a CA without a certificate, ...).
    """
    names = (f"{prefix}TLS_CERT", f"{prefix}TLS_KEY", f"{prefix}TLS_CA")
    if cert is None and key is None:
        if ca is not None:
            raise ConfigError(f"{names[2]} is set but {names[0]} and {names[1]} are not")
        return None
    if cert is None or key is None:
        given, missing = (names[0], names[1]) if key is None else (names[1], names[0])
        raise ConfigError(f"{given} is set but {missing} is not: TLS needs both")
    return ServerTlsFiles(
        SettingFile(names[0], cert),
        SettingFile(names[1], key),
        None if ca is None else SettingFile(names[2], ca),
    )


_Fingerprint = tuple[tuple[int, int, int], ...]


class CertificateReloader:
    """Server credentials that follow their files. Thread-safe (grpc core calls
    :meth:`fetch` from its own threads).

    The constructor reads and checks the files (ConfigError naming the setting
    and file on any problem).
    """

    def __init__(self, files: ServerTlsFiles, *, check_interval: float = DEFAULT_CHECK_INTERVAL):
        self.files = files
        self._interval = check_interval
        self._lock = threading.Lock()
        self._fingerprint = self._stat()
        self._initial = self._load()
        self._next_check = time.monotonic() + check_interval
        self.reloads = 0

    def credentials(self) -> grpc.ServerCredentials:
        """Credentials for ``add_secure_port``; mTLS when a CA was given."""
        return grpc.dynamic_ssl_server_credentials(
            self._initial,
            self.fetch,
            require_client_authentication=self.files.mutual,
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """The new configuration when the files changed, else None. Never raises:
        an exception here would fail the handshake of the connection asking."""
        try:
            with self._lock:
                return self._fetch_locked()
        except Exception:  # pragma: no cover - defensive: keep serving the old one
            log.exception("TLS certificate check failed; keeping the current certificate")
            return None

    def _fetch_locked(self) -> grpc.ServerCertificateConfiguration | None:
        now = time.monotonic()
        if now < self._next_check:
            return None
        self._next_check = now + self._interval
        try:
            fingerprint = self._stat()
        except ConfigError as exc:
            log.warning("TLS files not readable, keeping the current certificate: %s", exc)
            return None
        if fingerprint == self._fingerprint:
            return None
        try:
            config = self._load()
        except ConfigError as exc:
            log.warning("TLS files changed but are not valid, keeping the current one: %s", exc)
            return None
        self._fingerprint = fingerprint
        self.reloads += 1
        log.info(
            "TLS certificate reloaded from %s",
            ", ".join(str(f) for f in self.files.files()),
            extra={"event": "tls_reloaded"},
        )
        return config

    def _stat(self) -> _Fingerprint:
        return fingerprint(self.files.files())

    def _load(self) -> grpc.ServerCertificateConfiguration:
        pair: KeyPair = read_key_pair(self.files.cert, self.files.key)
        roots = None if self.files.ca is None else read_ca_bundle(self.files.ca)
        return grpc.ssl_server_certificate_configuration(
            [(pair.private_key, pair.cert_chain)], root_certificates=roots
        )
