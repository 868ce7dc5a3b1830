"""A private Docker engine for the image tests, and the image built on a local base.

No registry is reachable, so the base image is a Debian bookworm rootfs made
with ``debootstrap`` (python3 and its venv module) and imported with
``docker import``; the rootfs tarball is cached in ``~/.cache/ecsgrpc``. The
engine is a ``dockerd`` of its own (socket, data root and exec root under
paths of its own, no iptables rules, no default bridge), started when none
answers on its socket and stopped at the end; its data root is kept so
rebuilds reuse layers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

__all__ = ["Engine", "skip_reason"]

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("ECSGRPC_CACHE_DIR", "~/.cache/ecsgrpc")).expanduser()
RUN_DIR = Path("/run/ecsgrpc-docker")
SOCKET = RUN_DIR / "docker.sock"
BASE_IMAGE = "ecsgrpc-base:bookworm"
BASE_TARBALL = CACHE / "bookworm-python3.tar.gz"
# The Debian client first: it builds with the engine's own BuildKit
# (a newer client would want the buildx plugin).
_PATH = f"/usr/bin:/usr/sbin:{os.environ.get('PATH', '')}"


def _which(name: str) -> str | None:
    return shutil.which(name, path=_PATH)


def image_marks(timeout: float) -> list[Any]:
    """A module's marks for the image tests: ``image``, skipped where dockerd
    cannot run here (:func:`skip_reason`), and the module's time limit."""
    reason = skip_reason()
    return [
        pytest.mark.image,
        pytest.mark.skipif(reason is not None, reason=reason or ""),
        pytest.mark.timeout(timeout),
    ]


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the image tests start dockerd, which needs root"
    for tool in ("dockerd", "docker"):
        if _which(tool) is None:
            return f"no {tool} (apt-get install docker.io)"
    if not BASE_TARBALL.exists() and _which("debootstrap") is None:
        return "no debootstrap and no cached base rootfs (apt-get install debootstrap)"
    return None


class Engine:
    """The private dockerd, and ``docker`` commands against it."""

    def __init__(self) -> None:
        self.env = {
            **os.environ,
            "PATH": _PATH,
            "DOCKER_HOST": f"unix://{SOCKET}",
            "DOCKER_BUILDKIT": "1",
        }
        self._proc: subprocess.Popen[bytes] | None = None

    def docker(
        self,
        *args: str,
        timeout: float = 120,
        check: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        docker = _which("docker")
        assert docker is not None
        result = subprocess.run(
            [docker, *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {result.stdout}{result.stderr}")
        return result

    def answers(self) -> bool:
        return SOCKET.exists() and self.docker("version", check=False, timeout=20).returncode == 0

    def start(self) -> None:
        if self.answers():
            return  # one of ours is up (e.g. kept running between runs by hand)
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        dockerd = _which("dockerd")
        assert dockerd is not None
        log = (RUN_DIR / "dockerd.log").open("ab")
        self._proc = subprocess.Popen(
            [
                dockerd,
                f"--host=unix://{SOCKET}",
                f"--data-root={CACHE / 'docker'}",
                f"--exec-root={RUN_DIR / 'exec'}",
                f"--pidfile={RUN_DIR / 'dockerd.pid'}",
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.answers():
                return
            if self._proc.poll() is not None:
                break
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"dockerd did not start; see {RUN_DIR / 'dockerd.log'}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._proc = None

    # --- images -------------------------------------------------------------------

    def ensure_base(self) -> str:
        if self.docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0:
            return BASE_IMAGE
        if not BASE_TARBALL.exists():
            _debootstrap(BASE_TARBALL)
        self.docker("import", str(BASE_TARBALL), BASE_IMAGE, timeout=300)
        return BASE_IMAGE

    def build(self, tag: str, tmp: Path) -> None:
        """deploy/Dockerfile on the local base. pip in the build reaches the same
        index as this machine's pip: its CA bundle goes in as a build secret."""
        ca = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
        pip_conf = tmp / "pip.conf"
        lines = ["[global]", "cert = /run/secrets/ca.pem"]
        if os.environ.get("PIP_INDEX_URL"):
            lines.append(f"index-url = {os.environ['PIP_INDEX_URL']}")
        pip_conf.write_text("\n".join(lines) + "\n")
        self.docker(
            "build",
            "--network=host",
            "--file=deploy/Dockerfile",
            f"--build-arg=BASE={self.ensure_base()}",
            f"--secret=id=pip.conf,src={pip_conf}",
            f"--secret=id=ca.pem,src={ca}",
            f"--tag={tag}",
            str(ROOT),
            timeout=1500,
        )


def _debootstrap(tarball: Path) -> None:
    """Debian bookworm (minbase + python3, venv, CA certificates) as a tarball."""
    debootstrap = _which("debootstrap")
    assert debootstrap is not None
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tarball.parent) as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(rootfs),
                os.environ.get("ECSGRPC_DEBIAN_MIRROR", "http://deb.debian.org/debian"),
            ],
            check=True,
            capture_output=True,
            timeout=1800,
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        partial = tarball.with_suffix(".part")
        subprocess.run(
            f"tar -C {rootfs} -c . | gzip -1 > {partial}", shell=True, check=True, timeout=600
        )
        partial.rename(tarball)
