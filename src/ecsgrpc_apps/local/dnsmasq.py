"""A real DNS server on loopback: dnsmasq on 127.0.0.1, a free high port, records we control.

Used by the test suite (``tests/support/dnsmasq.py`` re-exports it) and by
``ecsgrpc bench`` (native ``dns:///`` and the seed-style client resolve through it).

* A/AAAA records live in a hosts file under ``--hostsdir``; dnsmasq re-reads
  it by inotify, in well under a second (:meth:`Dnsmasq.set_hosts`).
* SRV records come from ``--srv-host`` lines in a conf file. dnsmasq reads
  them only at start (SIGHUP reloads hosts files, not the configuration,
  measured with dnsmasq 2.90), so :meth:`Dnsmasq.set_srv` restarts it on the
  same port.
* ``--local=/<domain>/`` makes it authoritative for the test domain: a name
  without an AAAA record answers NOERROR/no data and an unknown name NXDOMAIN
  (without it, both are REFUSED, as there is no upstream).
* ``--local-ttl`` is the TTL it serves for every record.
* :meth:`stop`/:meth:`start` model a DNS outage (same port, same records).

Usage: the ``dnsmasq`` fixture in ``tests/conftest.py`` gives a started one.
Everything here blocks (subprocess, a readiness poll): from an event loop,
call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import dns.exception
import dns.message
import dns.query
import dns.rcode

__all__ = ["DNSMASQ", "DOMAIN", "Dnsmasq", "DnsmasqMissing", "dnsmasq_available", "dnsmasq_path"]

DNSMASQ = "/usr/sbin/dnsmasq"
DOMAIN = "test"
_HOSTS_FILE = "records"


class DnsmasqMissing(RuntimeError):
    """dnsmasq is not installed (the message says how to get it)."""


def _find() -> str | None:
    return DNSMASQ if os.access(DNSMASQ, os.X_OK) else shutil.which("dnsmasq")


def dnsmasq_available() -> bool:
    """True when a dnsmasq binary is installed."""
    return _find() is not None


def dnsmasq_path() -> str:
    """The dnsmasq binary; raises :class:`DnsmasqMissing` saying how to get it."""
    found = _find()
    if not found:
        raise DnsmasqMissing(
            "dnsmasq is not installed: the DNS tests and benchmarks need it "
            "(Debian/Ubuntu: apt-get install dnsmasq-base; .ci/run does this)"
        )
    return found


def _free_udp_port(host: str) -> int:
    """A port free for both UDP and TCP on ``host`` (dnsmasq binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket() as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port for dnsmasq")


class Dnsmasq:
    """One dnsmasq process serving ``*.test`` from files under ``workdir``.

    ``set_hosts({"agent.test": ["127.0.0.2", "127.0.0.3"]})`` replaces every
    A/AAAA record; ``set_srv([("_grpc._tcp.agent.test", "a.test", 50051, 0, 10)])``
    replaces every SRV record (name, target, port, priority, weight).
    """

    def __init__(
        self, workdir: Path, *, ttl: int = 1, host: str = "127.0.0.1", domain: str = DOMAIN
    ) -> None:
        self.binary = dnsmasq_path()
        self.host = host
        self.port = _free_udp_port(host)
        self.ttl = ttl
        self.domain = domain
        self._dir = workdir
        self._hosts_dir = workdir / "hosts"
        self._hosts_dir.mkdir(parents=True, exist_ok=True)
        self._conf = workdir / "dnsmasq.conf"
        self._log = workdir / "dnsmasq.log"
        self._srv: list[tuple[str, str, int, int, int]] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_conf()
        self.set_hosts({})

    @property
    def nameserver(self) -> str:
        """``host:port``, as a ``dns://HOST:PORT/...`` target's authority."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    # Records ---------------------------------------------------------------
    def set_hosts(self, records: Mapping[str, Iterable[str]]) -> None:
        """Replace all A/AAAA records (atomically: write, then rename)."""
        lines = [f"{ip} {name}" for name, ips in records.items() for ip in ips]
        tmp = self._dir / "records.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        os.chmod(tmp, 0o644)
        tmp.replace(self._hosts_dir / _HOSTS_FILE)

    def set_srv(self, records: Iterable[tuple[str, str, int, int, int]]) -> None:
        """Replace all SRV records; restarts dnsmasq when it runs (it reads them at start)."""
        self._srv = list(records)
        self._write_conf()
        if self.running:
            self.stop()
            self.start()

    def _write_conf(self) -> None:
        lines = [f"srv-host={n},{t},{p},{prio},{w}" for n, t, p, prio, w in self._srv]
        self._conf.write_text("\n".join(lines) + "\n")

    # Process ---------------------------------------------------------------
    def start(self, timeout: float = 5.0) -> None:
        """Start (or restart on the same port) and wait until it answers."""
        if self.running:
            return
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        args = [
            self.binary,
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            f"--port={self.port}",
            f"--listen-address={self.host}",
            "--bind-interfaces",
            f"--hostsdir={self._hosts_dir}",
            f"--conf-file={self._conf}",
            f"--local=/{self.domain}/",
            f"--local-ttl={self.ttl}",
            "--pid-file=",
            # Stay the user we are: as root, dnsmasq would drop to "nobody",
            # which cannot read pytest's private tmp directories.
            f"--user={user}",
            f"--group={group}",
            "--log-facility=-",
            "--log-queries",
        ]
        log = self._log.open("ab")
        try:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        query = dns.message.make_query(f"ready.{self.domain}.", "A")
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"dnsmasq exited: {self.log_text()[-2000:]}")
            try:
                answer = dns.query.udp(query, self.host, port=self.port, timeout=0.2)
            except (OSError, dns.exception.Timeout):
                time.sleep(0.05)
                continue
            if answer.rcode() in (dns.rcode.NXDOMAIN, dns.rcode.NOERROR):
                return
        self.stop()
        raise RuntimeError(f"dnsmasq did not answer within {timeout}s: {self.log_text()[-2000:]}")

    def stop(self) -> None:
        """Stop it (records kept for a later :meth:`start`)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
