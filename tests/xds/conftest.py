"""Fixtures for the xDS tests: Cloud Map (moto), agents, control planes, clients.

Addresses: 127.0.17.0/24 (agents from .2, control planes from .100), so these
tests never share an address with other suites running at the same time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ecsgrpc_apps.local.emulator import AwsEmulator, CloudMapService
from tests.support.agents import AgentProcess
from tests.support.xds import ControlPlaneProcess, XdsClient, start_control_plane

POLL = 0.5
TARGET = f"cloudmap://workflow.local/workflow-agent?poll={POLL}"
NAME = "workflow-agent"


def register(aws: AwsEmulator, svc: CloudMapService, agent: AgentProcess, zone: str) -> None:
    aws.register_instance(
        svc,
        agent.instance_id,
        {
            "AWS_INSTANCE_IPV4": agent.host,
            "AWS_INSTANCE_PORT": str(agent.port),
            "AVAILABILITY_ZONE": zone,
        },
    )


async def register_async(
    aws: AwsEmulator, svc: CloudMapService, agent: AgentProcess, zone: str
) -> None:
    await asyncio.to_thread(register, aws, svc, agent, zone)


@pytest.fixture
def control_planes(tmp_path: Path) -> Iterator[Callable[..., ControlPlaneProcess]]:
    """Factory: ``control_planes("127.0.17.100", "--service", ...)``; all killed at the end."""
    started: list[ControlPlaneProcess] = []

    def factory(host: str, *args: str) -> ControlPlaneProcess:
        plane = start_control_plane(host, tmp_path, args)
        started.append(plane)
        return plane

    yield factory
    for plane in started:
        plane.stop()


@pytest.fixture
def clients() -> Iterator[list[XdsClient]]:
    """Append started clients here; each is stopped at the end."""
    started: list[XdsClient] = []
    yield started
    for client in started:
        client.stop(timeout=5)
