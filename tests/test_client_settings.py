"""The client's target from the env: WORKFLOW_SERVICE_TARGET, else HOST+PORT, else the default."""

from __future__ import annotations

import pytest

from ecsgrpc.errors import ConfigError
from ecsgrpc.targets import ChainSpec, parse_target
from ecsgrpc_apps.workflow.settings import DEFAULT_WORKFLOW_TARGET, target_from_env

pytestmark = pytest.mark.timeout(10)

NAMES = ("WORKFLOW_SERVICE_TARGET", "WORKFLOW_SERVICE_HOST", "WORKFLOW_SERVICE_PORT")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)


def test_default_is_cloudmap_then_dns() -> None:
    assert target_from_env() == DEFAULT_WORKFLOW_TARGET
    assert isinstance(parse_target(DEFAULT_WORKFLOW_TARGET), ChainSpec)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WORKFLOW_SERVICE_HOST": "localhost"}, "localhost:50051"),
        ({"WORKFLOW_SERVICE_HOST": "agent", "WORKFLOW_SERVICE_PORT": "6000"}, "agent:6000"),
        ({"WORKFLOW_SERVICE_HOST": "::1"}, "[::1]:50051"),
        ({"WORKFLOW_SERVICE_HOST": "agent:7000"}, "agent:7000"),
        (
            {
                "WORKFLOW_SERVICE_TARGET": "dns:///agent.local:50051",
                "WORKFLOW_SERVICE_HOST": "ignored",
            },
            "dns:///agent.local:50051",
        ),
        ({"WORKFLOW_SERVICE_TARGET": "", "WORKFLOW_SERVICE_HOST": "agent"}, "agent:50051"),
    ],
)
def test_settings_rule(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert target_from_env() == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WORKFLOW_SERVICE_TARGET", "dns:///agent.local:x"),
        ("WORKFLOW_SERVICE_HOST", "bad host"),
        ("WORKFLOW_SERVICE_PORT", "70000"),
    ],
)
def test_bad_settings_name_the_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    if name == "WORKFLOW_SERVICE_PORT":
        monkeypatch.setenv("WORKFLOW_SERVICE_HOST", "agent")
    with pytest.raises(ConfigError) as info:
        target_from_env()
    assert name in str(info.value) and repr(value) in str(info.value)
