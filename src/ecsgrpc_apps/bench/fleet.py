"""The servers a scenario runs against, and the :class:`Fleet` each contender sees.

* :class:`AgentFleet`: plain agent processes on loopback addresses sharing
  one port (so one DNS name can list them all), and a dnsmasq serving that
  name when dnsmasq is installed.
* :class:`TaskFleet`: the local ECS-like service (:class:`TaskRunner`) in the
  embedded Cloud Map, with its healthy tasks mirrored into dnsmasq as A
  records, the way Cloud Map's DNS follows registrations.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import socket
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiobotocore.session import get_session

from ecsgrpc_apps.bench.contenders import DnsName, Fleet
from ecsgrpc_apps.local.dnsmasq import Dnsmasq, dnsmasq_available
from ecsgrpc_apps.local.emulator import REGION, AwsEmulator
from ecsgrpc_apps.local.process import AgentProcess, start_agent
from ecsgrpc_apps.local.task import TaskDefinition, TaskEvent, TaskEventKind
from ecsgrpc_apps.local.tasks import TaskRunner

__all__ = ["AgentFleet", "TaskFleet", "common_port"]

DNS_NAME = "workflow-agent.test"
# Far from 127.0.0.2-9, which the test suite's agents use.
_FIRST_HOST = 41
# Cloud Map's DNS TTL in the Terraform module and the seed.
DNS_TTL = 10
_FAKE = "testing"


def common_port(hosts: Sequence[str]) -> int:
    """A port free on every host (A records of one name share a port)."""
    for _ in range(100):
        port = random.randrange(20_000, 60_000)  # noqa: S311 (not for security)
        try:
            for host in hosts:
                with socket.socket() as sock:
                    sock.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free on every loopback host")


class AgentFleet:
    """``count`` agents on NETWORK.N:port (127.0.0.N by default); ``args[i]``: agent i's options."""

    def __init__(
        self,
        count: int,
        *,
        first_host: int = _FIRST_HOST,
        args: Sequence[tuple[str, ...]] = (),
        dns: bool = True,
        network: str = "127.0.0",
    ) -> None:
        self.hosts = [f"{network}.{first_host + i}" for i in range(count)]
        self._args = list(args) + [()] * (count - len(args))
        self._want_dns = dns and dnsmasq_available()
        self._dir = Path(tempfile.mkdtemp(prefix="ecsgrpc-bench-"))
        self.agents: list[AgentProcess] = []
        self.dnsmasq: Dnsmasq | None = None
        self.port = 0

    async def start(self) -> Fleet:
        self.port = common_port(self.hosts)
        for i, host in enumerate(self.hosts):
            agent = await asyncio.to_thread(
                start_agent, host, self._dir, port=self.port, args=self._args[i]
            )
            self.agents.append(agent)
        name = None
        if self._want_dns:
            self.dnsmasq = Dnsmasq(self._dir / "dnsmasq", ttl=DNS_TTL)
            self.dnsmasq.set_hosts({DNS_NAME: self.hosts})
            await asyncio.to_thread(self.dnsmasq.start)
            name = DnsName(self.dnsmasq.nameserver, DNS_NAME, self.port)
        return Fleet(tuple(a.address for a in self.agents), dns=name)

    async def aclose(self) -> None:
        for agent in self.agents:
            await asyncio.to_thread(agent.stop)
        if self.dnsmasq is not None:
            await asyncio.to_thread(self.dnsmasq.stop)


def fake_aws_session() -> Any:
    """An aiobotocore session with the emulator's fake keys (nothing read from ~/.aws)."""
    session = get_session()
    session.set_credentials(_FAKE, _FAKE)
    return session


class TaskFleet:
    """A TaskRunner service in Cloud Map (one emulator per benchmark), mirrored into DNS."""

    def __init__(
        self,
        emulator: AwsEmulator,
        service: str,
        *,
        definition: TaskDefinition,
        poll: float,
        dns: bool = True,
    ) -> None:
        self.emulator = emulator
        self.service = service
        self.poll = poll
        self._dir = Path(tempfile.mkdtemp(prefix=f"ecsgrpc-bench-{service}-"))
        port = common_port([f"127.0.0.{_FIRST_HOST + i}" for i in range(12)])
        self.definition = dataclasses.replace(definition, port=port)
        self.runner = TaskRunner(
            emulator,
            definition=self.definition,
            service=service,
            run_dir=self._dir / "tasks",
            first_host=_FIRST_HOST,
            health_interval=0.25,
            unhealthy_threshold=2,
            fresh_addresses=True,  # awsvpc: a new task has a new address
        )
        self.dnsmasq = (
            Dnsmasq(self._dir / "dnsmasq", ttl=DNS_TTL) if dns and dnsmasq_available() else None
        )
        self._in_dns: dict[str, str] = {}  # task id -> host
        self._writer = ThreadPoolExecutor(max_workers=1)  # DNS writes, in order

    async def start(self, count: int) -> Fleet:
        if self.dnsmasq is not None:
            await asyncio.to_thread(self.dnsmasq.start)
            self.runner.add_listener(self._mirror)
        await self.runner.start()
        await self.runner.scale(count)
        return self.fleet(count)

    def fleet(self, count: int) -> Fleet:
        target = f"cloudmap://workflow.local/{self.service}?poll={self.poll:g}"
        options = {
            "endpoint_url": self.emulator.endpoint_url,
            "region": REGION,
            "aws_session": fake_aws_session(),
        }
        name = None
        if self.dnsmasq is not None:
            name = DnsName(self.dnsmasq.nameserver, DNS_NAME, self.definition.port)
        addresses = tuple(t.address for t in self.runner.tasks)
        return Fleet(addresses, dns=name, cloudmap=target, resolver_options=options, size=count)

    def _mirror(self, event: TaskEvent) -> None:
        """Cloud Map's DNS: a healthy registered task has an A record; others not."""
        task = event.task
        if event.kind is TaskEventKind.HEALTHY:
            self._in_dns[task.task_id] = task.host
        elif event.kind in (
            TaskEventKind.UNHEALTHY,
            TaskEventKind.DRAINING,
            TaskEventKind.KILLED,
            TaskEventKind.EXITED,
            TaskEventKind.STOPPED,
        ):
            self._in_dns.pop(task.task_id, None)
        else:
            return
        dnsmasq, hosts = self.dnsmasq, sorted(set(self._in_dns.values()))
        if dnsmasq is not None:
            self._writer.submit(dnsmasq.set_hosts, {DNS_NAME: hosts})

    async def aclose(self) -> None:
        await self.runner.aclose()
        await asyncio.to_thread(self._writer.shutdown)
        if self.dnsmasq is not None:
            await asyncio.to_thread(self.dnsmasq.stop)
