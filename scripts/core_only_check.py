"""The library on its own: a venv with only the core dependencies.

Run by ``make core-only`` (part of ``make test``) as
``python scripts/core_only_check.py VENV``. It starts a real Workflow Agent
(from the development venv), then in VENV, where only ``pip install .`` ran:

* nothing beyond the core is installed (no aiobotocore, pydantic, FastAPI...);
* ``ecsgrpc.connect()`` on a static target makes a health call to the agent;
* ``ecsgrpc probe`` reports it SERVING (exit 0);
* a ``cloudmap://`` target fails in one line naming the ``aws`` extra;
* an app command (``ecsgrpc gateway``) says which extra it needs.

Exits 0 when all hold; prints one line per failed check otherwise.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.13.30"
NOT_IN_CORE = ("aiobotocore", "botocore", "aiohttp", "pydantic", "fastapi", "uvicorn", "typer",
               "rich", "httpx", "boto3", "moto", "matplotlib")  # fmt: skip

CONNECT = """
import asyncio, sys
import ecsgrpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

async def main() -> int:
    async with ecsgrpc.connect(sys.argv[1], connect_timeout=10) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10)
    print("status", health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    return 0

sys.exit(asyncio.run(main()))
"""
CLOUDMAP = "import ecsgrpc; ecsgrpc.connect('cloudmap://workflow.local/workflow-agent')"


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _start_agent(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    dev = Path(sys.executable).parent / "ecsgrpc"
    with log.open("wb") as out:
        agent = subprocess.Popen(
            [str(dev), "agent", "--host", HOST, "--port", "0", "--drain-seconds", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(rf"serving on {re.escape(HOST)}:(\d+)", log.read_text(errors="replace"))
        if found:
            return agent, f"{HOST}:{found.group(1)}"
        if agent.poll() is not None:
            break
        time.sleep(0.1)
    agent.kill()
    raise SystemExit(f"core-only: the agent did not start: {log.read_text(errors='replace')}")


def _checks(venv: Path, address: str) -> list[str]:
    python, cli = str(venv / "bin" / "python"), str(venv / "bin" / "ecsgrpc")
    failures = []
    present = _run([python, "-c", f"import importlib.util as u; print([m for m in {NOT_IN_CORE!r} "
                    "if u.find_spec(m)])"])  # fmt: skip
    if present.stdout.strip() != "[]":
        failures.append(f"packages beyond the core are installed: {present.stdout.strip()}")
    connect = _run([python, "-c", CONNECT, address])
    if connect.returncode != 0 or "status SERVING" not in connect.stdout:
        failures.append(f"connect() on a static target failed: {connect.stderr.strip()[-300:]}")
    probe = _run([cli, "probe", address])
    if probe.returncode != 0 or probe.stdout != "status: SERVING\n":
        failures.append(f"ecsgrpc probe exited {probe.returncode}: {probe.stderr.strip()}")
    cloudmap = _run([python, "-c", CLOUDMAP])
    if "pip install 'ecsgrpc[aws]'" not in cloudmap.stderr:
        failures.append(f"cloudmap:// without the aws extra: {cloudmap.stderr.strip()[-300:]}")
    gateway = _run([cli, "gateway", "--help"])
    if gateway.returncode != 2 or "pip install 'ecsgrpc[gateway]'" not in gateway.stderr:
        failures.append(f"gateway without its extra: {gateway.returncode} {gateway.stderr.strip()}")
    if "Traceback" in gateway.stderr + probe.stderr:
        failures.append("a traceback reached the user")
    return failures


def main() -> int:
    venv = Path(sys.argv[1]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        agent, address = _start_agent(Path(tmp) / "agent.log")
        try:
            failures = _checks(venv, address)
        finally:
            agent.kill()
            agent.wait(timeout=10)
    for failure in failures:
        print(f"core-only: {failure}", file=sys.stderr)
    if not failures:
        print(f"core-only: ok (connect() and ecsgrpc probe against {address}, core deps only)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
