"""Read and check PEM files (certificates, private keys, CA bundles).

Every failure is a :class:`~ecsgrpc.errors.ConfigError` naming the setting
(an environment variable or a CLI flag) and the file, never the file's
content: a key must not reach a log line through an error message.

Checking uses the standard library's ``ssl`` module (OpenSSL), so a bad
file, a key that does not match its certificate or an encrypted key is
refused at start instead of failing every TLS handshake later.
"""

from __future__ import annotations

import os
import ssl
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ecsgrpc.errors import ConfigError

__all__ = ["KeyPair", "SettingFile", "read_ca_bundle", "read_key_pair"]

# A file being rewritten while we read it: read, check, read again; retry a few times.
_STABLE_READ_ATTEMPTS = 3
# Certificates, keys and tokens are small; anything bigger is a wrong path
# (and /dev/zero must not fill the memory).
MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SettingFile:
    """A file named by a setting: ``name`` is how users spell the setting."""

    name: str
    path: Path

    def __str__(self) -> str:
        return f"{self.name}={str(self.path)!r}"


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A certificate chain and its private key, PEM bytes (``repr`` hides the key)."""

    cert_chain: bytes
    private_key: bytes

    def __repr__(self) -> str:
        return f"KeyPair(cert_chain=<{len(self.cert_chain)} bytes>, private_key=<redacted>)"


def read_bytes(source: SettingFile) -> bytes:
    """The file's bytes; ConfigError naming the setting when it cannot be read,
    is not a regular file (a directory, a device, a FIFO), is empty or is
    larger than :data:`MAX_FILE_BYTES`."""
    try:
        fd = os.open(source.path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the file: {_os_reason(exc)}") from None
    except ValueError as exc:  # e.g. an embedded NUL byte in the path
        raise ConfigError(f"{source}: not a usable file path: {exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{source}: not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{source}: the file is larger than {MAX_FILE_BYTES} bytes")
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the file: {_os_reason(exc)}") from None
    finally:
        os.close(fd)
    if not data.strip():
        raise ConfigError(f"{source}: the file is empty")
    return data


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def read_ca_bundle(source: SettingFile) -> bytes:
    """PEM CA certificates from ``source``; ConfigError unless at least one parses."""
    data = read_bytes(source)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=data.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{source}: not a PEM CA certificate bundle ({_reason(exc)})") from None
    if not context.get_ca_certs():
        raise ConfigError(f"{source}: no CA certificate found in the file")
    return data


def read_key_pair(cert: SettingFile, key: SettingFile) -> KeyPair:
    """A certificate chain and its matching private key, checked by OpenSSL.

    Raises ConfigError naming both settings when either file cannot be read,
    is not PEM, the key is encrypted, or the key does not match the
    certificate. The files are read twice around the check so a rotation in
    progress is not half-read.
    """
    for _ in range(_STABLE_READ_ATTEMPTS):
        pair = KeyPair(read_bytes(cert), read_bytes(key))
        _check_pair(cert, key)
        if pair == KeyPair(read_bytes(cert), read_bytes(key)):
            return pair
    raise ConfigError(f"{cert} / {key}: the files keep changing while being read")


def _check_pair(cert: SettingFile, key: SettingFile) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A password callback stops OpenSSL from prompting on a terminal for
        # an encrypted key; an encrypted key is then refused.
        context.load_cert_chain(cert.path, key.path, password=_no_password)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(
            f"{cert} / {key}: not a PEM certificate with its matching unencrypted "
            f"private key ({_reason(exc)})"
        ) from None


def _no_password() -> bytes:
    raise ValueError("the private key is encrypted; give an unencrypted key")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"OpenSSL: {exc.reason}"
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."


Fingerprint = tuple[tuple[int, int, int], ...]


def fingerprint(files: Iterable[SettingFile]) -> Fingerprint:
    """(mtime, size, inode) of each file: changes when a file is rewritten or replaced.

    Raises ConfigError naming the setting when a file cannot be read.
    """
    prints = []
    for source in files:
        try:
            st = os.stat(source.path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{source}: cannot read the file: {exc}") from None
        prints.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(prints)
