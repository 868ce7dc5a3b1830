"""Agents for the gateway benchmarks: several agent endpoints served by one process.

``gateway_overload`` (and the gateway measuring scripts) measure the gateway;
the agents are its environment. On a small machine they share the cores the
gateway is not pinned to with the load generator, and three ``ecsgrpc agent``
processes there cost about as much CPU per conversation as the gateway
itself, so they, not the gateway, capped what a step could serve. This pool
serves the same servicer (:class:`WorkflowAgentServicer`, same events, same
``served_by`` per endpoint) and the standard health service on one plain
``grpc.aio`` server per address, all in one process: the gateway still sees
three endpoints, three connections and the same stream per conversation,
at less CPU on the agents' side (no server metrics, tracing or per-call
interceptors, one process's threads instead of three), and under the
gateway's own CPU policy, ``SCHED_BATCH`` (:mod:`ecsgrpc_apps.scheduling`).

    python -m ecsgrpc_apps.bench.agent_pool 127.0.0.61 127.0.0.62 127.0.0.63

prints ``serving ADDRESS,ADDRESS,...`` once every server listens, and stops on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from ecsgrpc_apps.scheduling import apply_cpu_policy
from ecsgrpc_apps.workflow import SERVICE_NAME, pb2_grpc
from ecsgrpc_apps.workflow.agent import WorkflowAgentServicer
from ecsgrpc_apps.workflow.settings import AgentSettings

__all__ = ["AgentPool"]

_READY = "serving "


async def _serve(hosts: Sequence[str]) -> None:
    servers: list[grpc.aio.Server] = []
    addresses = []
    for host in hosts:
        server = grpc.aio.server()
        settings = AgentSettings(instance_id=f"agent-{host}")
        pb2_grpc.add_WorkflowAgentServicer_to_server(WorkflowAgentServicer(settings), server)  # type: ignore[no-untyped-call]
        health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        for service in ("", SERVICE_NAME):
            await health.set(service, health_pb2.HealthCheckResponse.SERVING)
        port = server.add_insecure_port(f"{host}:0")
        await server.start()
        servers.append(server)
        addresses.append(f"{host}:{port}")
    print(_READY + ",".join(addresses), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await asyncio.gather(*(server.stop(0) for server in servers))


class AgentPool:
    """The pool as a child process: :meth:`start` (blocking), :attr:`addresses`, :meth:`stop`."""

    def __init__(self, hosts: Sequence[str]) -> None:
        self.hosts = list(hosts)
        self.addresses: tuple[str, ...] = ()
        self.proc: subprocess.Popen[str] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> tuple[str, ...]:
        """Start the process and wait (<= ``timeout``) until it serves; its addresses.

        Raises RuntimeError with its log's end when it does not serve in time.
        """
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (lives as long as the pool)
            prefix="ecsgrpc-agent-pool-", suffix=".log"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ecsgrpc_apps.bench.agent_pool", *self.hosts],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if line.startswith(_READY):
            self.addresses = tuple(line[len(_READY) :].strip().split(","))
            return self.addresses
        log = Path(self._log.name).read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"the agent pool did not serve within {timeout:g} s:\n{line}{log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()  # and deleted
            self._log = None


if __name__ == "__main__":
    apply_cpu_policy("batch")  # before gRPC starts its threads: they inherit it
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(sys.argv[1:]))
