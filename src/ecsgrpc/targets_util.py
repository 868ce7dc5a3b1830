"""Small, pure helpers for addresses shared by the CLI, probe and target parser."""

from __future__ import annotations

import ipaddress
import re

from ecsgrpc.errors import ConfigError

__all__ = ["parse_host_port", "parse_port"]

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$")


def parse_port(text: str, *, context: str) -> int:
    """A TCP port 1..65535 from text; ConfigError quotes ``context`` otherwise."""
    if not text.isascii() or not text.isdigit():
        raise ConfigError(f"{context!r}: port {text!r} is not a number")
    if len(text.lstrip("0")) > 5:  # also keeps int() away from huge digit strings
        raise ConfigError(f"{context!r}: port {text} is out of range 1-65535")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{context!r}: port {port} is out of range 1-65535")
    return port


def parse_host_port(text: str, *, default_port: int | None = None) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` (port optional when a default is given).

    Raises ConfigError that quotes ``text`` and says what is wrong.
    """
    raw = text.strip()
    if not raw:
        raise ConfigError(f"{text!r}: empty address")
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise ConfigError(f"{text!r}: missing ']' after IPv6 address")
        host, rest = raw[1:end], raw[end + 1 :]
        _check_ipv6(host, text)
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            raise ConfigError(f"{text!r}: unexpected {rest!r} after ']'")
    elif raw.count(":") > 1:
        _check_ipv6(raw, text)
        host, port_text = raw, None
    else:
        host, _, port_text_raw = raw.partition(":")
        port_text = port_text_raw if ":" in raw else None
        _check_host(host, text)
    if port_text is None or port_text == "":
        if default_port is None:
            raise ConfigError(f"{text!r}: missing port (expected host:port)")
        return host, default_port
    return host, parse_port(port_text, context=text)


def _check_ipv6(host: str, text: str) -> None:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise ConfigError(f"{text!r}: {host!r} is not a valid IPv6 address") from None


def _check_host(host: str, text: str) -> None:
    if not host:
        raise ConfigError(f"{text!r}: empty host")
    if not _HOSTNAME.match(host):
        raise ConfigError(f"{text!r}: {host!r} is not a valid host name or address")
