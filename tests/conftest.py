"""Shared fixtures: real agent processes on loopback addresses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.agents import AgentProcess, start_agent


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    """Factory: ``agents("127.0.0.2", args=(...))``; every agent is killed at the end."""
    started: list[AgentProcess] = []

    def factory(host: str, **kwargs: object) -> AgentProcess:
        agent = start_agent(host, tmp_path, **kwargs)  # type: ignore[arg-type]
        started.append(agent)
        return agent

    yield factory
    for agent in started:
        agent.stop()


# Discovery: the AWS emulator (moto server) and a real DNS server (dnsmasq).
from tests.support.aws import aws, aws_emulator  # noqa: E402, F401
from tests.support.dnsmasq import Dnsmasq  # noqa: E402


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[Dnsmasq]:
    """A started dnsmasq serving ``*.test`` with TTL 1, stopped at the end."""
    server = Dnsmasq(tmp_path / "dnsmasq", ttl=1)
    server.start()
    yield server
    server.stop()
