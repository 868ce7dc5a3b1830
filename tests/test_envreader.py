"""The library's settings reader (standard library only): one line per problem,
naming the variable or the flag, secrets never shown, empty means unset."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecsgrpc.config import Secret, ServerSettings, load
from ecsgrpc.errors import ConfigError
from ecsgrpc.security.settings import ClientSecuritySettings
from ecsgrpc_apps.workflow.settings import AgentSettings

pytestmark = pytest.mark.timeout(30)


def test_defaults_and_environment_values_are_typed() -> None:
    settings = load(
        ServerSettings,
        env={"GRPC_PORT": "7000", "GRPC_LOG_JSON": "yes", "GRPC_TLS_CA": "/x/ca.pem"},
    )
    assert (settings.port, settings.log_json, settings.tls_ca) == (7000, True, Path("/x/ca.pem"))
    assert settings.drain_seconds == 5.0 and settings.max_connection_age_seconds is None


def test_every_problem_is_listed_in_one_line_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load(ServerSettings, env={"GRPC_PORT": "70000", "GRPC_DRAIN_SECONDS": "nan"})
    message = str(caught.value)
    assert "\n" not in message
    assert "GRPC_PORT='70000': must be <= 65535" in message
    assert "GRPC_DRAIN_SECONDS='nan': must be a finite number" in message


def test_a_value_given_as_a_flag_is_named_by_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"--port='0x10': not a whole number"):
        load(ServerSettings, env={}, given_as={"port": "--port"}, port="0x10")


def test_secrets_are_redacted_in_errors_and_repr() -> None:
    with pytest.raises(ConfigError) as caught:
        load(ClientSecuritySettings, env={"WORKFLOW_SERVICE_AUTH_TOKEN": "x" * 5000})
    assert "xxxx" not in str(caught.value)
    assert "<redacted>" in str(caught.value)
    settings = ServerSettings(auth_token="s3cret-token-value")  # type: ignore[arg-type]
    assert isinstance(settings.auth_token, Secret)
    assert "s3cret" not in repr(settings)


def test_empty_variables_count_as_unset() -> None:
    settings = load(ServerSettings, env={"GRPC_TLS_CERT": "", "GRPC_PORT": ""})
    assert settings.tls_cert is None and settings.port == 50051


def test_construction_validates_too() -> None:
    with pytest.raises(ConfigError, match=r"GRPC_GRACE_SECONDS=-1\.0: must be >= 0"):
        ServerSettings(grace_seconds=-1.0)
    with pytest.raises(ConfigError, match="GRPC_LOG_LEVEL='LOUD': must be one of"):
        ServerSettings(log_level="LOUD")


@pytest.mark.parametrize("value", ["true", "1", "on", "Yes", "false", "0", "off", "No"])
def test_booleans(value: str) -> None:
    settings = load(ServerSettings, env={"GRPC_LOG_JSON": value})
    assert settings.log_json is (value.lower() in ("true", "1", "on", "yes"))


def test_a_bad_boolean_says_what_is_accepted() -> None:
    with pytest.raises(ConfigError, match="GRPC_LOG_JSON='maybe': not a boolean"):
        load(ServerSettings, env={"GRPC_LOG_JSON": "maybe"})


@pytest.mark.parametrize(
    ("cls", "env", "field", "expected"),
    [
        (ServerSettings, {"GRPC_LOG_LEVEL": "info"}, "log_level", "INFO"),
        (ServerSettings, {"GRPC_LOG_LEVEL": "Warning"}, "log_level", "WARNING"),
        (AgentSettings, {"AGENT_CPU_POLICY": "BATCH"}, "cpu_policy", "batch"),
        (AgentSettings, {"AGENT_CPU_POLICY": "Normal"}, "cpu_policy", "normal"),
    ],
)
def test_a_choice_is_matched_whatever_its_case_and_kept_as_spelled_in_the_choices(
    cls: type, env: dict[str, str], field: str, expected: str
) -> None:
    assert getattr(load(cls, env=env), field) == expected


def test_a_value_that_is_no_choice_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="AGENT_CPU_POLICY='fifo': must be one of batch, normal"):
        load(AgentSettings, env={"AGENT_CPU_POLICY": "fifo"})
