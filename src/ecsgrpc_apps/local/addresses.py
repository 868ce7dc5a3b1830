"""Loopback addresses for local tasks: one address per task, a fixed port per service.

All of 127.0.0.0/8 is local on Linux, so tasks get 127.0.0.2, 127.0.0.3, ...
the way awsvpc tasks each get an ENI address and share a container port.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Collection

from ecsgrpc.errors import ConfigError

__all__ = ["choose_address", "port_is_free"]

_FIRST = 2
_LAST = 254


def port_is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (a local bind, no network traffic).

    SO_REUSEADDR is set as gRPC sets it, so a port in TIME_WAIT counts as free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
                return False
            raise
    return True


def choose_address(port: int, *, taken: Collection[str], first: int = _FIRST) -> str:
    """The lowest ``127.0.0.N`` (N >= ``first``) not in ``taken`` whose ``port`` is free.

    Raises ConfigError when every address from ``first`` to 254 is in use.
    """
    if not _FIRST <= first <= _LAST:
        raise ConfigError(f"first loopback host must be {_FIRST}-{_LAST}, got {first}")
    for n in range(first, _LAST + 1):
        host = f"127.0.0.{n}"
        if host not in taken and port_is_free(host, port):
            return host
    raise ConfigError(f"no loopback address 127.0.0.{first}-{_LAST} has port {port} free")
