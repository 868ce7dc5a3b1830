"""Client TLS and mTLS for the balanced channel and the probe.

:class:`ClientTls` says where the files are; :meth:`ClientTls.load` reads and
checks them into a :class:`ClientCredentialsSource`, which hands out
``grpc.ChannelCredentials`` for each new per-endpoint channel.

Rotation on the client: a grpc channel keeps the credentials it was built
with for its whole life, reconnects included. A :class:`BalancedChannel`
re-checks the files (off the event loop) each time discovery reports a new
endpoint set, and builds each *new* subchannel with the current files. A
subchannel that already exists keeps its credentials until its endpoint
leaves discovery (a task replaced). So rotate with overlap: trust the old and
the new CA together (a bundle in ``WORKFLOW_SERVICE_TLS_CA``) until every
agent serves the new certificate, and give client certificates a lifetime
longer than the longest-lived connection (or recreate the client).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from ecsgrpc.errors import ConfigError
from ecsgrpc.security.pem import SettingFile, fingerprint, read_ca_bundle, read_key_pair

__all__ = ["ClientCredentialsSource", "ClientTls"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClientTls:
    """Client TLS settings (every field optional: TLS with the default roots).

    ``ca``: PEM bundle to trust (default: grpc's bundled public roots).
    ``cert``/``key``: this client's certificate and key, for mTLS (both or neither).
    ``server_name``: the name to verify in the server's certificate instead of
    the address dialled (``grpc.ssl_target_name_override``): needed when
    discovery yields IP addresses (Cloud Map, ECS) and certificates carry a
    DNS name. ``names`` are how the settings are spelled in errors.
    """

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None
    names: tuple[str, str, str, str] = field(
        default=(
            "WORKFLOW_SERVICE_TLS_CA",
            "WORKFLOW_SERVICE_TLS_CERT",
            "WORKFLOW_SERVICE_TLS_KEY",
            "WORKFLOW_SERVICE_TLS_SERVER_NAME",
        ),
        compare=False,
    )

    def load(self) -> ClientCredentialsSource:
        """Read and check the files now. ConfigError names the setting and file."""
        if (self.cert is None) != (self.key is None):
            _, cert, key, _ = self.names
            given, missing = (cert, key) if self.key is None else (key, cert)
            raise ConfigError(
                f"{given} is set but {missing} is not: a client certificate needs both"
            )
        if self.server_name is not None and not _valid_server_name(self.server_name):
            raise ConfigError(
                f"{self.names[3]}={self.server_name!r}: not a valid host name for TLS"
            )
        return ClientCredentialsSource(self)

    def channel_options(self) -> list[tuple[str, Any]]:
        """Channel args that go with the credentials (the server name override)."""
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]

    def files(self) -> tuple[SettingFile, ...]:
        found = []
        for name, path in zip(self.names[:3], (self.ca, self.cert, self.key), strict=True):
            if path is not None:
                found.append(SettingFile(name, path))
        return tuple(found)


def _valid_server_name(name: str) -> bool:
    if not name or len(name) > 253 or name != name.strip():
        return False
    return all(c.isascii() and (c.isalnum() or c in "-._:[]*") for c in name)


class ClientCredentialsSource:
    """The current ``grpc.ChannelCredentials`` for :class:`ClientTls` files.

    :meth:`current` never does I/O (safe on the event loop); :meth:`refresh`
    re-reads changed files (blocking: call it in a thread). Thread-safe.
    """

    def __init__(self, tls: ClientTls) -> None:
        self.tls = tls
        self._lock = threading.Lock()
        self._fingerprint = self._stat()
        self._credentials = self._build()
        self.reloads = 0

    def current(self) -> grpc.ChannelCredentials:
        with self._lock:
            return self._credentials

    def refresh(self) -> bool:
        """Rebuild the credentials if a file changed; True when they were. A file
        that became invalid is logged and the previous credentials are kept."""
        try:
            fingerprint = self._stat()
            if fingerprint == self._fingerprint:
                return False
            credentials = self._build()
        except ConfigError as exc:
            log.warning("client TLS files changed but are not usable, keeping the old: %s", exc)
            return False
        with self._lock:
            self._fingerprint = fingerprint
            self._credentials = credentials
            self.reloads += 1
        log.info("client TLS files reloaded", extra={"event": "tls_reloaded"})
        return True

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        return fingerprint(self.tls.files())

    def _build(self) -> grpc.ChannelCredentials:
        tls = self.tls
        roots = None if tls.ca is None else read_ca_bundle(SettingFile(tls.names[0], tls.ca))
        if tls.cert is None or tls.key is None:
            return grpc.ssl_channel_credentials(root_certificates=roots)
        cert, key = SettingFile(tls.names[1], tls.cert), SettingFile(tls.names[2], tls.key)
        pair = read_key_pair(cert, key)
        return grpc.ssl_channel_credentials(
            root_certificates=roots, private_key=pair.private_key, certificate_chain=pair.cert_chain
        )
