"""A virtualenv with only the container image's runtime dependencies.

deploy/Dockerfile installs ``.[EXTRAS]`` (its ``ARG EXTRAS``); this builds
the same install outside Docker so tests can run the commands ECS runs.
The dependencies are cached under ``~/.cache/ecsgrpc`` keyed by the
project's declared dependencies and the extras; the project itself is reinstalled (not
editable, no dependencies) on every call, so the venv holds this checkout.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

__all__ = ["image_extras", "runtime_venv"]

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("ECSGRPC_CACHE_DIR", "~/.cache/ecsgrpc")).expanduser()


def image_extras() -> str:
    """The extras deploy/Dockerfile installs (its ``ARG EXTRAS=`` default)."""
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    match = re.search(r"^ARG EXTRAS=(\S+)$", text, re.MULTILINE)
    assert match, "deploy/Dockerfile has no ARG EXTRAS=..."
    return match.group(1)


def _pip(venv: Path, *args: str, timeout: float = 900) -> None:
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args],
        check=True,
        capture_output=True,
        timeout=timeout,
    )


@cache
def runtime_venv() -> Path:
    """Path of the venv (built once per pyproject.toml + extras, refreshed per session)."""
    extras = image_extras()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = [project.get("dependencies", []), project.get("optional-dependencies", {}), extras]
    key = hashlib.sha256(json.dumps(deps, sort_keys=True).encode()).hexdigest()
    venv = CACHE / f"runtime-venv-{key[:16]}"
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        _pip(venv, "install", "--quiet", f"{ROOT}[{extras}]")
        (venv / ".complete").touch()
    _pip(venv, "install", "--quiet", "--no-deps", "--force-reinstall", f"{ROOT}[{extras}]")
    return venv
