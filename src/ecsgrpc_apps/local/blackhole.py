"""A black hole on loopback: drop every packet to and from one address and port.

What a task whose ENI vanished looks like to its clients: no reset, no
answer, the connection stays "up" until TCP gives up. Made with two
``iptables`` rules in the OUTPUT chain (loopback packets pass through it
once per direction), each matching one loopback address **and** one port and
tagged with the comment ``ecsgrpc-test`` so that a crashed run's leftovers
can be found and removed (:func:`remove_leftover_rules`). Needs root (or
CAP_NET_ADMIN) and the ``iptables`` package.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from types import TracebackType
from typing import Self

__all__ = ["COMMENT", "BlackHole", "iptables_missing", "remove_leftover_rules"]

COMMENT = "ecsgrpc-test"
# Wait at most this long for the xtables lock (another iptables user) and for
# iptables itself: a rule must never hang the caller.
_LOCK_WAIT = "5"
_RUN_TIMEOUT = 15.0


def iptables_missing() -> str | None:
    """Why black holes cannot be made here, or None when they can."""
    if shutil.which("iptables") is None:
        return "iptables is not installed (apt-get install iptables)"
    probe = subprocess.run(
        ["iptables", "-w", _LOCK_WAIT, "-S", "OUTPUT"],
        capture_output=True,
        text=True,
        check=False,
        timeout=_RUN_TIMEOUT,
    )
    if probe.returncode != 0:
        return f"iptables cannot be used here: {probe.stderr.strip() or probe.returncode}"
    return None


def _rules(host: str, port: int) -> list[list[str]]:
    tag = ["-m", "comment", "--comment", COMMENT, "-j", "DROP"]
    return [
        ["OUTPUT", "-d", f"{host}/32", "-p", "tcp", "--dport", str(port), *tag],
        ["OUTPUT", "-s", f"{host}/32", "-p", "tcp", "--sport", str(port), *tag],
    ]


def remove_leftover_rules() -> int:
    """Delete every rule tagged ``ecsgrpc-test`` (left by a killed run); how many."""
    listing = subprocess.run(
        ["iptables", "-w", _LOCK_WAIT, "-S", "OUTPUT"],
        capture_output=True,
        text=True,
        check=False,
        timeout=_RUN_TIMEOUT,
    )
    removed = 0
    for line in listing.stdout.splitlines():
        parts = line.split()
        if parts[:1] == ["-A"] and f"--comment {COMMENT}" in line:
            subprocess.run(
                ["iptables", "-w", _LOCK_WAIT, "-D", *parts[1:]],
                check=False,
                timeout=_RUN_TIMEOUT,
            )
            removed += 1
    return removed


class BlackHole:
    """``with BlackHole(host, port):`` drops the packets of ``host:port`` inside the block.

    ``host`` must be one loopback address; the rules are removed on exit and by
    :meth:`close`, whatever happened in between.
    """

    def __init__(self, host: str, port: int) -> None:
        if not ipaddress.ip_address(host).is_loopback or not 0 < port < 65536:
            raise ValueError(
                f"a black hole is for one loopback address and port, not {host}:{port}"
            )
        self.host = host
        self.port = port
        self._added: list[list[str]] = []

    def open(self) -> None:
        """Start dropping (idempotent)."""
        if self._added:
            return
        for rule in _rules(self.host, self.port):
            subprocess.run(
                ["iptables", "-w", _LOCK_WAIT, "-I", *rule],
                check=True,
                capture_output=True,
                timeout=_RUN_TIMEOUT,
            )
            self._added.append(rule)

    def close(self) -> None:
        """Stop dropping (idempotent; every rule added is removed)."""
        while self._added:
            rule = self._added.pop()
            subprocess.run(
                ["iptables", "-w", _LOCK_WAIT, "-D", *rule],
                check=False,
                capture_output=True,
                timeout=_RUN_TIMEOUT,
            )

    def __enter__(self) -> Self:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
