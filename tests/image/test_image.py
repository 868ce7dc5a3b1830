"""deploy/Dockerfile built and run for real (``make test-image``).

The image is built on a local Debian base (no registry is reachable); the
agent and the gateway run as ECS runs them: entryPoint + command of the
module's task definitions, their environment, read-only root filesystem and
an init process. The agent is probed with the image's own HEALTHCHECK (and
the task definition's healthCheck command); the gateway finds it through
Cloud Map (moto) registered the way ECS registers a task, and answers a
conversation. Then the docker-compose dev setup is brought up and answers
one too. Containers live on a docker network of this machine only.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsgrpc_apps.local.emulator import REGION, AwsEmulator
from tests.support.docker import Engine, image_marks
from tests.support.terraform import Evaluator, load_module

pytestmark = image_marks(timeout=1800)

ROOT = Path(__file__).resolve().parents[2]
TAG = "ecsgrpc:test"
LABEL = "ecsgrpc-image-test"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = Engine()
    engine.start()
    try:
        engine.build(TAG, tmp_path_factory.mktemp("build"))
        yield engine
    finally:
        ids = engine.docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).stdout.split()
        if ids:
            engine.docker("rm", "-f", *ids, check=False)
        nets = engine.docker("network", "ls", "-q", "--filter", f"label={LABEL}", check=False)
        for net in nets.stdout.split():
            engine.docker("network", "rm", net, check=False)
        engine.stop()


@pytest.fixture(scope="module")
def network(engine: Engine) -> Iterator[tuple[str, str]]:
    """(name, host address on it): a bridge without NAT or iptables rules."""
    name = f"ecsgrpc-it-{os.getpid()}"
    engine.docker("network", "create", "--driver=bridge", f"--label={LABEL}", name)
    info = json.loads(engine.docker("network", "inspect", name).stdout)[0]
    gateway = info["IPAM"]["Config"][0]["Gateway"]
    yield name, gateway
    engine.docker("network", "rm", name, check=False)


def task_definitions() -> dict[str, dict[str, Any]]:
    """The module's container definitions, evaluated for a cluster in the emulator's region
    (tests/test_terraform_cli.py checks they are what `terraform plan` gives ECS)."""
    module = load_module(ROOT / "infra" / "terraform" / "modules" / "ecsgrpc")
    ev = Evaluator(
        module,
        {
            "vpc_id": "vpc-0123456789abcdef0",
            "private_subnet_ids": ["subnet-0123456789abcdef0"],
            "cluster_arn": f"arn:aws:ecs:{REGION}:123456789012:cluster/demo",
            "agent_image": TAG,
            "gateway_image": TAG,
        },
    )
    found = {}
    for name in ("agent", "gateway"):
        (definition,) = json.loads(
            ev.attr(("aws_ecs_task_definition", name), "container_definitions")
        )
        found[name] = definition
    return found


def run_like_ecs(
    engine: Engine, definition: dict[str, Any], name: str, network: str, env: dict[str, str]
) -> str:
    """`docker run` with what ECS takes from the definition; returns the container name."""
    (entrypoint,) = definition["entryPoint"]  # docker takes one program here
    args = ["run", "--detach", f"--name={name}", f"--network={network}", f"--label={LABEL}"]
    if definition.get("readonlyRootFilesystem"):
        args.append("--read-only")
    if definition.get("linuxParameters", {}).get("initProcessEnabled"):
        args.append("--init")
    for item in definition["environment"]:
        args.append(f"--env={item['name']}={item['value']}")
    for key, value in env.items():
        args.append(f"--env={key}={value}")
    args += [f"--entrypoint={entrypoint}", TAG, *definition["command"]]
    engine.docker(*args)
    return name


def container_ip(engine: Engine, name: str, network: str) -> str:
    info = json.loads(engine.docker("inspect", name).stdout)[0]
    return str(info["NetworkSettings"]["Networks"][network]["IPAddress"])


def wait_healthy(engine: Engine, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        state = json.loads(engine.docker("inspect", name).stdout)[0]["State"]
        status = state.get("Health", {}).get("Status", "")
        if status == "healthy":
            return
        assert state["Running"], engine.docker("logs", name, check=False).stderr[-3000:]
        time.sleep(1)
    logs = engine.docker("logs", name, check=False)
    raise AssertionError(f"{name} is {status!r}: {logs.stdout[-2000:]}{logs.stderr[-2000:]}")


def converse(url: str, text: str, timeout: float = 60) -> dict[str, Any]:
    body = json.dumps(
        {"conversation_id": "image-test", "messages": [{"role": "user", "content": text}]}
    ).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return json.loads(response.read())  # type: ignore[no-any-return]
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_agent_and_gateway_run_as_ecs_runs_them(engine: Engine, network: tuple[str, str]) -> None:
    net, host_address = network
    defs = task_definitions()
    agent = run_like_ecs(engine, defs["agent"], f"it-agent-{os.getpid()}", net, {})
    # The image's own HEALTHCHECK (run by dockerd) turns healthy...
    health = json.loads(engine.docker("inspect", TAG).stdout)[0]["Config"]["Healthcheck"]
    assert health["Test"][:3] == ["CMD", "ecsgrpc", "probe"]
    wait_healthy(engine, agent)
    # ...and the task definition's healthCheck command passes in the container.
    probe = engine.docker("exec", agent, *defs["agent"]["healthCheck"]["command"][1:], check=False)
    assert probe.returncode == 0, probe.stdout + probe.stderr

    # Cloud Map as ECS fills it: the agent task's address, in moto.
    with AwsEmulator(host=host_address) as aws:
        service = aws.provision_cloudmap("workflow.local", "workflow-agent")
        aws.register_instance(
            service,
            "0123456789abcdef0123456789abcdef",
            {
                "AWS_INSTANCE_IPV4": container_ip(engine, agent, net),
                "AVAILABILITY_ZONE": f"{REGION}a",
                "AWS_INIT_HEALTH_STATUS": "HEALTHY",
                "ECS_CLUSTER_NAME": "demo",
                "ECS_SERVICE_NAME": "workflow-agent",
            },
        )
        sdk = {k: v for k, v in aws.env().items() if k != "AWS_REGION"}  # the plan sets it
        gateway = run_like_ecs(engine, defs["gateway"], f"it-gateway-{os.getpid()}", net, sdk)
        check = defs["gateway"]["healthCheck"]["command"][1:]
        deadline = time.monotonic() + 120
        while engine.docker("exec", gateway, *check, check=False).returncode != 0:
            assert time.monotonic() < deadline, engine.docker("logs", gateway).stderr[-3000:]
            time.sleep(1)
        port = defs["gateway"]["portMappings"][0]["containerPort"]
        url = f"http://{container_ip(engine, gateway, net)}:{port}/v1/conversations"
        reply = converse(url, "hello from the image")
        logs = engine.docker("logs", gateway, check=False)
    assert "from the image" in json.dumps(reply), reply
    # The image's extras make the gateway's loop and HTTP parsing native.
    said = logs.stdout + logs.stderr
    assert "event loop: uvloop" in said, said[-3000:]
    assert "http parser: httptools" in said, said[-3000:]
    # Docker's default seccomp profile lets a process choose SCHED_BATCH for itself.
    assert "cpu policy: batch" in said, said[-3000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_compose_dev_setup_answers_a_conversation(engine: Engine) -> None:
    compose = shutil.which("docker-compose", path=engine.env["PATH"])
    if compose is None:
        pytest.skip("no docker-compose (apt-get install docker-compose)")
    engine.docker("tag", TAG, "ecsgrpc:dev")  # compose's image name; built above
    port = _free_port()
    project = f"ecsgrpc-it-{os.getpid()}"
    env = {**engine.env, "GATEWAY_PUBLISH_PORT": str(port)}
    base = [compose, "-p", project, "-f", str(ROOT / "deploy" / "docker-compose.yml")]
    try:
        up = subprocess.run(
            [*base, "up", "--detach", "--no-build"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert up.returncode == 0, up.stdout + up.stderr
        reply = converse(f"http://127.0.0.1:{port}/v1/conversations", "hello from compose", 180)
        assert "from compose" in json.dumps(reply)
    finally:
        subprocess.run([*base, "down", "--volumes", "--timeout", "5"], env=env, timeout=300)
