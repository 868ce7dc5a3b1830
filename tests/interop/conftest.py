"""Interop server processes for the interop tests (real processes, free ports)."""

from __future__ import annotations

import select
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


@dataclass(frozen=True)
class InteropServers:
    """The ``host:port`` of each started server."""

    addresses: tuple[str, ...]

    @property
    def static_target(self) -> str:
        return "static:///" + ",".join(self.addresses)


def start_interop_server(host: str, log: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``python -m ecsgrpc_apps.interop.server`` on ``host``, port 0; (process, host:port)."""
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ecsgrpc_apps.interop.server",
                f"--host={host}",
                "--port=0",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("listening on "):
        proc.kill()
        proc.wait(5)
        raise RuntimeError(f"interop server on {host} did not start: {line!r} {log.read_text()}")
    return proc, line.removeprefix("listening on ").strip()


def stop_all(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def interop_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteropServers]:
    """Three interop server processes on 127.0.0.2-4, free ports; stopped at the end."""
    logs = tmp_path_factory.mktemp("interop")
    procs: list[subprocess.Popen[str]] = []
    try:
        addresses = []
        for host in HOSTS:
            proc, address = start_interop_server(host, logs / f"{host}.log")
            procs.append(proc)
            addresses.append(address)
        yield InteropServers(tuple(addresses))
    finally:
        stop_all(procs)
