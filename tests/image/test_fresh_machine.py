"""`make test` on a machine without its system packages (``make test-fresh``).

``scripts/system_deps.sh`` installs what the tests need (dnsmasq, chromium and
its driver, iptables) with apt-get, or stops in one line naming them. Its
install branch only runs where those packages are missing, so it runs here in
a container from the local Debian base (``tests/support/docker.py``: python3
and its venv module, nothing else): the working tree is copied in, and

1. the packages, and ``make`` itself, are absent;
2. as a user without root or sudo, ``make system-deps`` stops in one line
   naming every missing package;
3. as root it installs them (apt-get, the Debian mirror), and a second run has
   nothing left to do;
4. ``make install`` creates the venv, ``make lint`` passes, and a test module
   that starts dnsmasq passes.

The container shares this machine's network (its engine has no NAT), so apt
reaches the Debian mirror and pip the same index as here (this machine's pip
configuration and local indexes are mounted read-only). The tests run inside
it start dnsmasq on loopback, on a free port; none adds an iptables rule.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.docker import Engine, image_marks

pytestmark = image_marks(timeout=2400)

ROOT = Path(__file__).resolve().parents[2]
LABEL = "ecsgrpc-fresh-machine-test"
TREE = "/work/ecsgrpc"
# What scripts/system_deps.sh installs (the commands; `make` is the README's prerequisite).
COMMANDS = ("dnsmasq", "chromium", "chromedriver", "iptables", "make")
PACKAGES = ("dnsmasq-base", "chromium", "chromium-driver", "iptables")
# A module whose tests start a real dnsmasq (tests/conftest.py's fixture).
DNSMASQ_MODULE = "tests/resolvers/test_dns.py"


def _copy_tree(dest: Path) -> None:
    """The working tree as `git clone` + local edits would have it (tracked and
    untracked files, nothing git ignores: no venv, no caches)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.split(b"\0")
    dest.mkdir(parents=True)
    for raw in listed:
        if not raw:
            continue
        name = raw.decode()
        source = ROOT / name
        if not source.is_file():  # deleted but still in the index
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _pip_passthrough() -> list[str]:
    """docker run arguments giving the container this machine's pip setup: PIP_*
    variables, its CA bundle, and every local index, wheel folder or constraints
    file its configuration names (read-only)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    ca = env.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
    env["PIP_CERT"] = "/run/host-ca.pem"  # not over the container's own bundle: apt updates it
    args = [f"--volume={ca}:/run/host-ca.pem:ro"]
    args += [f"--env={k}={v}" for k, v in sorted(env.items())]
    paths = {"/etc/pip.conf", "/etc/xdg/pip"}
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    words = [w for line in listed.splitlines() for w in line.partition("=")[2].strip("'\"").split()]
    for word in words + [v for k, v in env.items() if k != "PIP_CERT"]:
        path = word.removeprefix("file://")
        if path.startswith("/") and not path.startswith("/etc/ssl"):
            paths.add(path.removesuffix("/simple"))
    mounted = sorted(p for p in paths if os.path.exists(p))
    for path in [p for p in mounted if not any(p.startswith(f"{q}/") for q in mounted)]:
        args.append(f"--volume={path}:{path}:ro")
    return args


class Box:
    """One running container and commands in it (as root unless a user is given)."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.timings: list[tuple[str, float]] = []  # (command, seconds), for the report

    def sh(
        self, script: str, *, user: str | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        args = ["exec", "--workdir", TREE]
        if user is not None:
            args += ["--user", user]
        started = time.monotonic()
        result = self.engine.docker(
            *args, self.name, "bash", "-c", script, check=False, timeout=timeout
        )
        self.timings.append((script[:60], time.monotonic() - started))
        return result


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    engine = Engine()
    engine.start()
    tree = tmp_path_factory.mktemp("fresh") / "tree"
    name = f"ecsgrpc-fresh-{os.getpid()}"
    try:
        base = engine.ensure_base()
        _copy_tree(tree)
        engine.docker(
            "run",
            "--detach",
            f"--name={name}",
            f"--label={LABEL}",
            "--network=host",
            f"--volume={tree}:{TREE}",
            *_pip_passthrough(),
            base,
            "sleep",
            "infinity",
        )
        yield Box(engine, name)
    finally:
        engine.docker("rm", "-f", name, check=False)
        engine.stop()
        shutil.rmtree(tree, ignore_errors=True)  # the venv made in the container: ~1 GB


def _show(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


def test_make_test_installs_its_system_packages_on_a_machine_without_them(box: Box) -> None:
    # 1. A machine without them (a debootstrap minbase with python3).
    found = box.sh(" ; ".join(f"command -v {c}" for c in COMMANDS) + " ; true")
    assert found.stdout.strip() == "", f"present already: {found.stdout}"
    installed = box.sh(
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq"
        " && apt-get install -y -qq --no-install-recommends make >/dev/null",
        timeout=900,
    )
    assert installed.returncode == 0, _show(installed)

    # 2. Without root or sudo: one line naming every package, nothing run.
    box.sh("useradd --create-home tester")
    refused = box.sh("make system-deps", user="tester")
    assert refused.returncode != 0, _show(refused)
    lines = [line for line in refused.stderr.splitlines() if line.startswith("make test:")]
    assert len(lines) == 1, _show(refused)
    assert lines[0].startswith("make test: missing system packages: "), lines[0]
    for package in PACKAGES:
        assert package in lines[0], lines[0]

    # 3. As root: installed with apt-get, then nothing left to do.
    first = box.sh("make system-deps", timeout=1500)
    assert first.returncode == 0, _show(first) + box.sh("tail -30 /tmp/ecsgrpc-apt.log").stdout
    assert f"make test: installing {' '.join(PACKAGES)}" in first.stderr, _show(first)
    present = box.sh(" && ".join(f"command -v {c}" for c in COMMANDS))
    assert present.returncode == 0, _show(present)
    again = box.sh("make system-deps")
    assert again.returncode == 0 and "installing" not in again.stderr, _show(again)

    # 4. The venv, the linters, and a module that starts a real dnsmasq.
    venv = box.sh("make install", timeout=1500)
    assert venv.returncode == 0, _show(venv)
    lint = box.sh("make lint", timeout=600)
    assert lint.returncode == 0, _show(lint)
    tests = box.sh(
        f".venv/bin/pytest -q -p no:cacheprovider -o addopts= {shlex.quote(DNSMASQ_MODULE)}",
        timeout=900,
    )
    assert tests.returncode == 0, _show(tests)
    assert " passed" in tests.stdout and "skipped" not in tests.stdout, _show(tests)
    print(first.stderr.strip(), tests.stdout.strip().splitlines()[-1], sep="\n")
    for command, seconds in box.timings:
        print(f"{seconds:7.1f} s  {command}")


def test_the_tree_copy_leaves_out_what_git_ignores(tmp_path: Path) -> None:
    """The container gets sources only (a 1 GB venv in it would hide a broken install)."""
    _copy_tree(tmp_path / "tree")
    assert (tmp_path / "tree" / "Makefile").is_file()
    assert not (tmp_path / "tree" / ".venv").exists()
