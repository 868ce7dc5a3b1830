"""A black hole on loopback: drop every packet to and from one address and port.

What a task whose ENI vanished looks like to its clients: no reset, no
answer, the connection stays "up" until TCP gives up. Made with two
``iptables`` rules in the OUTPUT chain (loopback packets pass through it
once per direction), each matching one loopback address **and** one port and
tagged with the comment ``ecsgrpc-test-pid-<owner's pid>`` so that a crashed
run's leftovers can be found and removed (:func:`remove_leftover_rules`)
without touching the rules of another run still going (two test sessions, or
a benchmark beside tests). Needs root (or CAP_NET_ADMIN) and the
``iptables`` package.
"""

from __future__ import annotations

import ipaddress
import os
import re
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


def _rules(host: str, port: int, owner: int) -> list[list[str]]:
    tag = ["-m", "comment", "--comment", f"{COMMENT}-pid-{owner}", "-j", "DROP"]
    return [
        ["OUTPUT", "-d", f"{host}/32", "-p", "tcp", "--dport", str(port), *tag],
        ["OUTPUT", "-s", f"{host}/32", "-p", "tcp", "--sport", str(port), *tag],
    ]


_TAG = re.compile(rf"--comment \"?{COMMENT}(?:-pid-(\d+))?\"?(?:\s|$)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def remove_leftover_rules() -> int:
    """Delete the rules tagged ``ecsgrpc-test`` whose owner is gone (a killed run) or
    is this process; how many. Rules of another live process are kept."""
    listing = subprocess.run(
        ["iptables", "-w", _LOCK_WAIT, "-S", "OUTPUT"],
        capture_output=True,
        text=True,
        check=False,
        timeout=_RUN_TIMEOUT,
    )
    removed = 0
    me = os.getpid()
    for line in listing.stdout.splitlines():
        parts = line.split()
        tag = _TAG.search(line)
        if parts[:1] != ["-A"] or tag is None:
            continue
        owner = None if tag.group(1) is None else int(tag.group(1))
        if owner is not None and owner != me and _alive(owner):
            continue
        subprocess.run(
            ["iptables", "-w", _LOCK_WAIT, "-D", *(p.strip('"') for p in parts[1:])],
            check=False,
            timeout=_RUN_TIMEOUT,
        )
        removed += 1
    return removed


class BlackHole:
    """``with BlackHole(host, port):`` drops the packets of ``host:port`` inside the block.

    ``host`` must be one loopback address; the rules are removed on exit and by
    :meth:`close`, whatever happened in between. ``owner``: the process the
    rules belong to (default this one), for :func:`remove_leftover_rules`.
    """

    def __init__(self, host: str, port: int, *, owner: int | None = None) -> None:
        if not ipaddress.ip_address(host).is_loopback or not 0 < port < 65536:
            raise ValueError(
                f"a black hole is for one loopback address and port, not {host}:{port}"
            )
        self.host = host
        self.port = port
        self.owner = os.getpid() if owner is None else owner  # in the rules' tag
        self._added: list[list[str]] = []

    def open(self) -> None:
        """Start dropping (idempotent)."""
        if self._added:
            return
        for rule in _rules(self.host, self.port, self.owner):
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
