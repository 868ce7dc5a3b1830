"""Fixtures for the local stack: one emulator per session, a runner per test."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.config
import pytest

from ecsgrpc_apps.local.emulator import REGION, AwsEmulator
from ecsgrpc_apps.local.task import TaskDefinition
from ecsgrpc_apps.local.tasks import TaskRunner


@pytest.fixture(scope="session")
def emulator() -> Iterator[AwsEmulator]:
    with AwsEmulator() as emu:
        yield emu


def free_port() -> int:
    """A port number nobody uses right now (the service's fixed port for one test)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fast_definition(**changes: Any) -> TaskDefinition:
    """A task definition with short drain/grace/stopTimeout, on a port of its own."""
    options: dict[str, Any] = {
        "port": free_port(),
        "drain_seconds": 0.3,
        "grace_seconds": 1.0,
        "stop_timeout": 5.0,
    }
    return TaskDefinition(**{**options, **changes})


@pytest.fixture
async def make_runner(
    emulator: AwsEmulator, tmp_path: Path
) -> AsyncIterator[Callable[..., TaskRunner]]:
    """Factory of started-on-enter runners with a unique Cloud Map service; all closed after."""
    runners: list[TaskRunner] = []

    def factory(**kwargs: Any) -> TaskRunner:
        options: dict[str, Any] = {
            "definition": fast_definition(),
            "service": f"agent-{uuid.uuid4().hex[:8]}",
            "run_dir": tmp_path / f"run-{len(runners)}",
            "health_interval": 0.1,
            "startup_timeout": 30.0,
        }
        runner = TaskRunner(emulator, **{**options, **kwargs})
        runners.append(runner)
        return runner

    yield factory
    for runner in runners:
        await runner.aclose()


class CloudMap:
    """``DiscoverInstances`` against the emulator, the way a client would call it."""

    def __init__(self, emulator: AwsEmulator) -> None:
        import boto3

        self._client = boto3.client(
            "servicediscovery",
            region_name=REGION,
            endpoint_url=emulator.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            # botocore would prefix the host with "data-"; wrong with an override.
            config=botocore.config.Config(inject_host_prefix=False),
        )

    def discover_sync(self, namespace: str, service: str, health: str) -> list[dict[str, Any]]:
        reply = self._client.discover_instances(
            NamespaceName=namespace, ServiceName=service, HealthStatus=health
        )
        return list(reply["Instances"])

    async def discover(
        self, namespace: str, service: str, health: str = "HEALTHY"
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.discover_sync, namespace, service, health)


@pytest.fixture(scope="session")
def cloudmap(emulator: AwsEmulator) -> CloudMap:
    return CloudMap(emulator)
