"""xDS test support: the control plane and xDS clients as real processes.

* :func:`start_control_plane` runs ``python -m ecsgrpc xds serve`` and waits
  for its "serving on HOST:PORT" line; it can be SIGTERMed, SIGKILLed and
  started again on the same port.
* :class:`XdsClient` runs a client we did not write the balancing of: grpcio's
  C-core (``tests/support/xds_client.py``) or grpc-js (``xds_client.js``), with
  ``GRPC_XDS_BOOTSTRAP_CONFIG`` in its environment. Each call is one JSON line
  on stdout, collected by a reader thread: ``{"t", "by"}`` or ``{"t", "err"}``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ControlPlaneProcess", "XdsClient", "start_control_plane"]

_SERVING = re.compile(r"xds control plane serving on (\S+):(\d+)")
HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


@dataclass
class ControlPlaneProcess:
    host: str
    args: tuple[str, ...]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 60.0) -> None:
        """Start (again, on the same port once one is known)."""
        cmd = [
            sys.executable,
            "-m",
            "ecsgrpc",
            "xds",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            *self.args,
        ]
        offset = len(self.log_text())
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _SERVING.search(self.log_text()[offset:])
            if match:
                self.port = int(match.group(2))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"control plane did not start:\n{self.log_text()[offset:]}")

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def start_control_plane(
    host: str, log_dir: Path, args: Sequence[str], env: dict[str, str] | None = None
) -> ControlPlaneProcess:
    plane = ControlPlaneProcess(
        host, tuple(args), dict(env or {}), log_dir / f"xds-{host}-{time.monotonic_ns()}.log"
    )
    plane.start()
    return plane


@dataclass
class XdsClient:
    """One client process; ``records`` fills as calls complete."""

    cmd: list[str]
    env: dict[str, str]
    stderr_path: Path
    records: list[dict[str, object]] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    _reader: threading.Thread | None = None

    def start(self) -> XdsClient:
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                self.cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env={**os.environ, **self.env},
                cwd=REPO,
            )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.records.append(json.loads(line))
            except ValueError:
                continue

    def since(self, t: float) -> list[dict[str, object]]:
        return [r for r in list(self.records) if float(r["t"]) >= t]  # type: ignore[arg-type]

    def served(self, since: float = 0.0) -> Counter[str]:
        return Counter(str(r["by"]) for r in self.since(since) if "by" in r)

    def errors(self, since: float = 0.0) -> list[dict[str, object]]:
        return [r for r in self.since(since) if "err" in r]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> None:
        """Close stdin (the client finishes its calls and exits), then make sure."""
        if self.proc is None:
            return
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)


def python_client(
    bootstrap: str,
    target: str,
    log_dir: Path,
    *,
    concurrency: int = 2,
    interval: float = 0.0,
    duration: float = 300.0,
    args: Sequence[str] = (),
) -> XdsClient:
    """grpcio's C-core client; ``args``: more flags (``--tls-ca FILE`` ...)."""
    cmd = [
        sys.executable,
        str(HERE / "xds_client.py"),
        target,
        "--concurrency",
        str(concurrency),
        "--interval",
        str(interval),
        "--duration",
        str(duration),
        *args,
    ]
    env = {"GRPC_XDS_BOOTSTRAP_CONFIG": bootstrap, "PYTHONPATH": str(REPO / "src")}
    return XdsClient(cmd, env, log_dir / f"pyclient-{time.monotonic_ns()}.err").start()


# grpc-js: installed once per machine into a cache directory by the tests' setup.
NODE_PACKAGES = ("@grpc/grpc-js@~1.14.0", "@grpc/grpc-js-xds@~1.14.0", "@grpc/proto-loader@~0.8.0")
NODE_CACHE = Path(
    os.environ.get("ECSGRPC_NODE_CACHE", Path.home() / ".cache" / "ecsgrpc-tests" / "node-xds")
)


def install_node_packages(cache: Path = NODE_CACHE, timeout: float = 240.0) -> Path:
    """``npm install`` grpc-js, grpc-js-xds and proto-loader into ``cache`` (once);
    returns its ``node_modules``. Raises RuntimeError with npm's output on failure."""
    modules = cache / "node_modules"
    if all((modules / p.rsplit("@", 1)[0] / "package.json").exists() for p in NODE_PACKAGES):
        return modules
    cache.mkdir(parents=True, exist_ok=True)
    manifest = cache / "package.json"
    if not manifest.exists():
        manifest.write_text('{"name": "ecsgrpc-xds-test-client", "private": true}\n')
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", *NODE_PACKAGES],
        cwd=cache,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"npm install failed:\n{done.stdout}\n{done.stderr}")
    return modules


def node_client(
    bootstrap: str,
    target: str,
    log_dir: Path,
    *,
    modules: Path,
    concurrency: int = 2,
    interval: float = 0.0,
    duration: float = 300.0,
    extra_env: Mapping[str, str] | None = None,
) -> XdsClient:
    cmd = [
        "node",
        str(HERE / "xds_client.js"),
        target,
        "--concurrency",
        str(concurrency),
        "--interval",
        str(interval),
        "--duration",
        str(duration),
    ]
    env = {"GRPC_XDS_BOOTSTRAP_CONFIG": bootstrap, "NODE_PATH": str(modules), **(extra_env or {})}
    return XdsClient(cmd, env, log_dir / f"nodeclient-{time.monotonic_ns()}.err").start()
