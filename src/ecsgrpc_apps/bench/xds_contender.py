"""The ``native_xds`` contender: grpcio's own xDS client (``xds:///NAME``), fed
by an ``ecsgrpc xds`` control plane that discovers the fleet.

The control plane polls the fleet's Cloud Map service when there is one, else
serves its fixed list (see :func:`open_native_xds` for where it runs). The
client is a plain ``grpc.aio`` channel: resolution, balancing, priorities,
retries (gRFC A44) and outlier detection (A50) all happen in C-core.

C-core reads the bootstrap (``GRPC_XDS_BOOTSTRAP_CONFIG``) when it creates its
xDS client, once per process while any xDS channel lives, so every control
plane of a bench run listens on the same loopback port, picked once.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from ecsgrpc_apps.bench.contenders import (
    _READY_TIMEOUT,
    ChannelClient,
    Client,
    Fleet,
    _native_ready,
)

__all__ = ["NAME", "open_native_xds"]

NAME = "workflow-agent"
HOST = "127.0.0.1"
_SERVING = re.compile(r"xds control plane serving on \S+:(\d+)")
_port: int | None = None


def _bench_port() -> int:
    global _port  # noqa: PLW0603 (one port for the whole process, see the module docstring)
    if _port is None:
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            _port = int(probe.getsockname()[1])
        from ecsgrpc.xds.bootstrap import bootstrap_json

        os.environ["GRPC_XDS_BOOTSTRAP_CONFIG"] = bootstrap_json(
            [f"{HOST}:{_port}"], node_id=f"bench-{os.getpid()}"
        )
    return _port


class ControlPlaneProcess:
    """``python -m ecsgrpc xds serve`` for one fleet."""

    def __init__(
        self,
        target: str,
        env: dict[str, str],
        port: int,
        *,
        extra: tuple[str, ...] = (),
        service: str = "",
    ) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="ecsgrpc-bench-xds-"))
        self.log_path = self._dir / "xds.log"
        cmd = [
            sys.executable,
            "-m",
            "ecsgrpc",
            "xds",
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
            "--drain-seconds",
            "0",
            "--grace-seconds",
            "0",
            "--service",
            f"{service or NAME}={target}",
            *extra,
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}
            )

    def wait_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if _SERVING.search(text):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"xds control plane did not start:\n{text[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class XdsChannelClient(ChannelClient):
    """The channel plus the control plane it needs; closing stops both."""

    def __init__(self, channel: Any, plane: Any) -> None:
        super().__init__("native_xds", channel)
        self.plane = plane

    async def aclose(self) -> None:
        await super().aclose()
        await self.plane.stop()


async def open_native_xds(fleet: Fleet) -> Client:
    """A ready ``xds:///workflow-agent`` channel over ``fleet``'s discovery.

    The control plane runs in this process (started in milliseconds, where a
    process takes seconds on a loaded machine); between calls it only waits
    on its polls, so it costs the measured client next to nothing. The
    ``xds_fleet`` scenario runs it as its own process to measure it.
    """
    from prometheus_client import CollectorRegistry

    from ecsgrpc.config import ServerSettings
    from ecsgrpc.xds.config import XdsService
    from ecsgrpc.xds.server import ControlPlane

    target = fleet.cloudmap or "static:///" + ",".join(fleet.addresses)
    settings = ServerSettings(host=HOST, port=_bench_port(), drain_seconds=0, grace_seconds=0)
    plane = ControlPlane(
        [XdsService(NAME, target)],
        settings=settings,
        registry=CollectorRegistry(),
        resolver_options=dict(fleet.resolver_options),
    )
    await plane.start()
    channel = grpc.aio.insecure_channel(f"xds:///{NAME}")
    try:
        await _native_ready(channel, fleet.expected, _READY_TIMEOUT)
    except BaseException:
        await channel.close()
        await plane.stop()
        raise
    return XdsChannelClient(channel, plane)
