"""Names from the hosts file (``/etc/hosts``), answered before DNS.

grpc's own ``dns:`` resolver goes through the system's lookup, which reads
the hosts file first (nsswitch's ``files dns``); dnspython asks nameservers
only. So ``dns:///localhost:50051`` or a name an operator pinned in
``/etc/hosts`` resolves here as it does with grpc. Only when no explicit
nameserver is given (``dns://NS/...`` asks that server alone).

The file is re-read when its modification time changes; reading happens in a
worker thread (file I/O never runs on the event loop).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from dataclasses import dataclass

__all__ = ["HOSTS_PATH", "HostsFile", "parse_hosts"]

HOSTS_PATH = "/etc/hosts"


def parse_hosts(text: str) -> dict[str, tuple[str, ...]]:
    """Name (lower case) -> addresses in file order; malformed lines are skipped."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        address = fields[0].split("%", 1)[0]  # a zone index (fe80::1%eth0) is dropped
        try:
            ipaddress.ip_address(address)
        except ValueError:
            continue
        for name in fields[1:]:
            addresses = found.setdefault(name.lower().rstrip("."), [])
            if address not in addresses:
                addresses.append(address)
    return {name: tuple(addresses) for name, addresses in found.items()}


@dataclass
class HostsFile:
    """The hosts file, cached by modification time. One event loop."""

    path: str = HOSTS_PATH
    _mtime: float | None = None
    _names: dict[str, tuple[str, ...]] | None = None

    async def lookup(self, name: str) -> tuple[str, ...]:
        """Addresses the file gives ``name`` (empty when none, or no file)."""
        names = await asyncio.to_thread(self._load)
        return names.get(name.lower().rstrip("."), ())

    def _load(self) -> dict[str, tuple[str, ...]]:
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError:
            return {}
        if self._names is None or mtime != self._mtime:
            try:
                with open(self.path, encoding="utf-8", errors="replace") as handle:
                    self._names = parse_hosts(handle.read(1 << 20))
            except OSError:
                return {}
            self._mtime = mtime
        return self._names
