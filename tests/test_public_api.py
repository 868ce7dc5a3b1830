"""The public surface: what `import ecsgrpc` offers and what the probe costs to start."""

from __future__ import annotations

import subprocess
import sys

import ecsgrpc


def test_every_exported_name_resolves() -> None:
    assert sorted(ecsgrpc.__all__) == sorted(ecsgrpc._EXPORTS)
    for name in ecsgrpc.__all__:
        assert getattr(ecsgrpc, name) is not None


def test_the_probe_does_not_import_the_heavy_stacks() -> None:
    check = (
        "import sys, runpy\n"
        "sys.argv = ['ecsgrpc', 'probe', '127.0.0.1:1', '--timeout', '0.05']\n"
        "try:\n    runpy.run_module('ecsgrpc', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('aiobotocore', 'fastapi', 'matplotlib', 'moto') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=30
    )
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr
