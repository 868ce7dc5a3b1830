"""Fixtures for the xDS tests: Cloud Map (moto), agents, control planes, clients.

Addresses: 127.0.17.0/24 (agents from .2, control planes from .100), so these
tests never share an address with other suites running at the same time.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsgrpc_apps.local.emulator import AwsEmulator, CloudMapService
from tests.support.agents import AgentProcess
from tests.support.xds import (
    ControlPlaneProcess,
    XdsClient,
    install_node_packages,
    node_client,
    python_client,
    start_control_plane,
)

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


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """grpc-js + grpc-js-xds from npm, installed once into a cache directory."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed for the grpc-js xDS tests (the CI image has them)")
    return install_node_packages()


@pytest.fixture(params=["grpcio", "grpc-js"])
def xds_client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., XdsClient]]:
    """Factory of clients we did not write: grpcio's C-core, or grpc-js + grpc-js-xds.
    ``xds_client(bootstrap_json, "xds:///NAME")``; every client is stopped at the end."""
    started: list[XdsClient] = []
    modules = request.getfixturevalue("node_modules") if request.param == "grpc-js" else None

    def factory(bootstrap: str, target: str, **kw: Any) -> XdsClient:
        if modules is None:
            client = python_client(bootstrap, target, tmp_path, **kw)
        else:
            client = node_client(bootstrap, target, tmp_path, modules=modules, **kw)
        started.append(client)
        return client

    yield factory
    for client in started:
        client.stop(timeout=5)
