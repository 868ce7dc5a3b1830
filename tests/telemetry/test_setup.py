"""OTLP export is switched on by the standard OTEL_* variables only, and a bad one
is a one-line error naming it (the apps exit 2, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ecsgrpc.errors import ConfigError
from ecsgrpc_apps.telemetry.setup import configure_from_env

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_SERVICE_NAME": "x"},  # naming a service exports nothing by itself
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.16.1:4317", "OTEL_SDK_DISABLED": "true"},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"},
    ],
)
def test_nothing_is_exported_unless_asked(env: dict[str, str]) -> None:
    assert configure_from_env("svc", env=env) == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"OTEL_TRACES_EXPORTER": "zipkin"},
            "OTEL_TRACES_EXPORTER=zipkin: unknown exporter 'zipkin'; choose from otlp, console, none",
        ),
        (
            {"OTEL_METRICS_EXPORTER": "otlp,prometheus"},
            "OTEL_METRICS_EXPORTER=otlp,prometheus: unknown exporter 'prometheus'",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.16.1:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf: only grpc is supported",
        ),
    ],
)
def test_bad_variables_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configure_from_env("svc", env=env)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("command", ["agent", "gateway"])
def test_the_apps_refuse_a_bad_variable_in_one_line(command: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_TRACES_EXPORTER"] = "jaeger"
    args = ["--host", "127.0.16.9", "--port", "0"]
    if command == "gateway":
        args += ["--target", "static:///127.0.16.9:1"]
    result = subprocess.run(
        [sys.executable, "-m", "ecsgrpc", command, *args],
        capture_output=True,
        text=True,
        timeout=50,
        env=env,
    )
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert lines == [
        f"ecsgrpc {command}: error: OTEL_TRACES_EXPORTER=jaeger: unknown exporter 'jaeger'; "
        "choose from otlp, console, none"
    ]


def test_service_name_defaults_but_otel_service_name_wins() -> None:
    code = (
        "from ecsgrpc_apps.telemetry.setup import configure_from_env;"
        "from opentelemetry import trace;"
        "print(configure_from_env('workflow-agent', 'i-1'));"
        "r = trace.get_tracer_provider().resource.attributes;"
        "print(r['service.name'], r['service.instance.id'])"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    base["OTEL_TRACES_EXPORTER"] = "console"
    base["OTEL_METRICS_EXPORTER"] = "none"
    for extra, expected in (({}, "workflow-agent"), ({"OTEL_SERVICE_NAME": "mine"}, "mine")):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=50,
            env={**base, **extra},
            check=True,
        ).stdout.splitlines()
        assert out == ["['traces:console']", f"{expected} i-1"]
