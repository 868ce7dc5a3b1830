"""deploy/Dockerfile and deploy/docker-compose.yml, checked as data against the code.

The files are parsed and every name in them (commands, options, env vars,
ports, services) is checked against what the package really has; the
health-check commands are run for real against a real agent (and a real HTTP
server) on loopback. tests/image builds and runs the image itself.
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import ecsgrpc.config
from tests.support.agents import AgentProcess

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return data


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return parse_dockerfile((DEPLOY / "Dockerfile").read_text())


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def settings_env_names() -> set[str]:
    """Every env var the server's and the agent's settings read (prefix + field name)."""
    from ecsgrpc_apps.workflow.settings import AgentSettings, ClientSettings

    names: set[str] = set()
    for cls in (ecsgrpc.config.ServerSettings, AgentSettings, ClientSettings):
        names |= set(ecsgrpc.config.env_names(cls).values())
    return names


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecsgrpc", *args], capture_output=True, text=True, timeout=timeout
    )


def run_python(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=30)


def healthcheck_argv(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] == "CMD", test  # exec form, no shell needed
    return [str(part) for part in test[1:]]


def with_address(argv: list[str], old: str, new: str) -> list[str]:
    replaced = [part.replace(old, new) for part in argv]
    assert replaced != argv, f"{old} not in {argv}"
    return replaced


# -- docker-compose.yml ---------------------------------------------------------
def test_compose_has_the_agent_with_two_replicas_and_the_gateway(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"workflow-agent", "api-gateway"}
    agent, gateway = services["workflow-agent"], services["api-gateway"]
    assert agent["deploy"]["replicas"] == 2
    # One image, built from the repository root with deploy/Dockerfile.
    for service in (agent, gateway):
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert service["image"] == agent["image"]
        context = (DEPLOY / service["build"]["context"]).resolve()
        assert (context / service["build"]["dockerfile"]) == DEPLOY / "Dockerfile"
        assert service["stop_signal"] == "SIGTERM"


def test_compose_env_vars_are_ones_the_settings_read(compose: dict[str, Any]) -> None:
    known = settings_env_names()
    agent_env = compose["services"]["workflow-agent"]["environment"]
    assert agent_env["GRPC_HOST"] == "0.0.0.0"
    assert agent_env["GRPC_PORT"] == "50051"
    assert set(agent_env) <= known, set(agent_env) - known
    # Values the settings accept, checked by the settings themselves.
    server = ecsgrpc.config.load(ecsgrpc.config.ServerSettings, env=agent_env)
    assert server.port == 50051 and server.host == "0.0.0.0"
    # drain + grace fit in compose's stop_grace_period (ECS's stopTimeout).
    grace = compose["services"]["workflow-agent"]["stop_grace_period"]
    assert server.drain_seconds + server.grace_seconds < int(grace.rstrip("s"))

    gateway_env = compose["services"]["api-gateway"]["environment"]
    # The client's target variable (docs/DESIGN: WORKFLOW_SERVICE_TARGET) is
    # read by the client settings; any other name must be a settings field.
    assert set(gateway_env) <= known | {"WORKFLOW_SERVICE_TARGET"}
    assert gateway_env["WORKFLOW_SERVICE_TARGET"] == "dns:///workflow-agent:50051"


def test_the_gateway_target_names_the_agent_service_and_its_port(compose: dict[str, Any]) -> None:
    services = compose["services"]
    target = services["api-gateway"]["environment"]["WORKFLOW_SERVICE_TARGET"]
    match = re.fullmatch(r"dns:///([a-z0-9-]+):(\d+)", target)
    assert match, target
    assert match.group(1) in services
    assert match.group(2) == services[match.group(1)]["environment"]["GRPC_PORT"]
    assert match.group(2) in services[match.group(1)]["expose"]


def test_the_gateway_waits_for_healthy_agents_and_publishes_8080(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["api-gateway"]
    assert gateway["depends_on"] == {"workflow-agent": {"condition": "service_healthy"}}
    assert "healthcheck" in compose["services"]["workflow-agent"]
    assert gateway["ports"] == ["${GATEWAY_PUBLISH_PORT:-8080}:8080"]
    command = gateway["command"]
    assert command[0] == "gateway"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "8080"
    assert "127.0.0.1:8080/healthz" in " ".join(healthcheck_argv(gateway))


def test_the_agent_command_and_its_health_command_exist(compose: dict[str, Any]) -> None:
    agent = compose["services"]["workflow-agent"]
    assert agent["command"] == ["agent"]
    assert run_cli("agent", "--help").returncode == 0
    argv = healthcheck_argv(agent)
    assert argv == ["ecsgrpc", "probe", "127.0.0.1:50051"]
    helped = run_cli("probe", "--help")
    assert helped.returncode == 0 and "HOST:PORT" in helped.stdout


def test_the_gateway_command_exists_with_its_options(compose: dict[str, Any]) -> None:
    helped = run_cli("gateway", "--help")
    if helped.returncode != 0 and "No such command" in helped.stderr + helped.stdout:
        pytest.skip("`ecsgrpc gateway` is not built on this branch yet")
    assert helped.returncode == 0, helped.stderr
    for option in compose["services"]["api-gateway"]["command"][1::2]:
        assert option in helped.stdout


@pytest.mark.timeout(60)
def test_the_agent_health_command_passes_on_a_serving_agent_and_fails_without_one(
    compose: dict[str, Any], agents: Callable[..., AgentProcess]
) -> None:
    argv = healthcheck_argv(compose["services"]["workflow-agent"])
    # Inside the container the agent listens on 0.0.0.0:50051; here on a loopback address.
    agent = agents("127.0.0.2")
    serving = with_address(argv, "127.0.0.1:50051", agent.address)
    ok = run_cli(*serving[1:])
    assert ok.returncode == 0, ok.stderr
    agent.stop()
    down = run_cli(*serving[1:])
    assert down.returncode == 2, down.stderr  # grpc_health_probe's "connection failure"


class _Healthz(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path == "/healthz" else 404
        body = json.dumps({"status": "ok" if code == 200 else "missing"}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.3", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.3:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.timeout(60)
def test_the_gateway_health_command_passes_on_200_and_fails_otherwise(
    compose: dict[str, Any], http_server: str
) -> None:
    argv = healthcheck_argv(compose["services"]["api-gateway"])
    assert argv[0] == "python"  # the image has python, not curl
    here = with_address(argv, "127.0.0.1:8080", http_server)
    ok = run_python(here[1:])
    assert ok.returncode == 0, ok.stderr
    missing = [part.replace("/healthz", "/nope") for part in here]
    not_found = run_python(missing[1:])
    assert not_found.returncode != 0
    down = with_address(argv, "127.0.0.1:8080", "127.0.0.1:1")
    refused = run_python(down[1:])
    assert refused.returncode != 0


# -- Dockerfile -----------------------------------------------------------------
def test_the_image_runs_as_a_non_root_user_it_creates(dockerfile: list[tuple[str, str]]) -> None:
    users = [args for word, args in dockerfile if word == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    runs = " ".join(args for word, args in dockerfile if word == "RUN")
    assert re.search(rf"useradd .*\b{user}\b", runs)
    uid = re.search(r"--uid (\d+)", runs)
    assert uid and int(uid.group(1)) != 0
    # Nothing runs as root after the switch.
    last_user = max(i for i, (word, _) in enumerate(dockerfile) if word == "USER")
    assert all(word != "RUN" for word, _ in dockerfile[last_user:])


def test_the_image_is_python_311_slim_with_the_ecsgrpc_entrypoint(
    dockerfile: list[tuple[str, str]],
) -> None:
    # The base is a build argument (the tests build on a local rootfs), by
    # default python:3.11-slim.
    assert ("ARG", "BASE=python:3.11-slim") in dockerfile
    froms = [args.split()[0] for word, args in dockerfile if word == "FROM"]
    assert froms and all(f == "${BASE}" for f in froms)
    [entrypoint] = [json.loads(args) for word, args in dockerfile if word == "ENTRYPOINT"]
    assert entrypoint == ["ecsgrpc"]
    [cmd] = [json.loads(args) for word, args in dockerfile if word == "CMD"]
    assert cmd == ["agent"]
    exposed = {p for word, args in dockerfile if word == "EXPOSE" for p in args.split()}
    assert exposed == {"50051", "8080"}
    # The console script the entrypoint calls is the package's own.
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^ecsgrpc = "ecsgrpc\.cli:main"$', pyproject, re.MULTILINE)


def test_the_image_health_check_is_the_agent_probe(dockerfile: list[tuple[str, str]]) -> None:
    [health] = [args for word, args in dockerfile if word == "HEALTHCHECK"]
    options, _, command = health.partition("CMD ")
    assert json.loads(command) == ["ecsgrpc", "probe", "127.0.0.1:50051"]
    assert "--timeout=" in options and "--interval=" in options


def test_the_files_the_image_copies_exist(dockerfile: list[tuple[str, str]]) -> None:
    for word, args in dockerfile:
        if word == "COPY" and not args.startswith("--from"):
            *sources, _dest = args.split()
            for source in sources:
                assert (ROOT / source).exists(), source
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for needed in ("!pyproject.toml", "!README.md", "!src/**"):
        assert needed in ignore
