"""infra/terraform through the real terraform binary and the hashicorp/aws provider.

fmt, init with the local provider, validate, plan (NLB off and on), then
apply and destroy against a moto server: after apply the Cloud Map names are
the client's default target's and ``ecsgrpc discover`` finds instances
registered the way ECS registers tasks. The container commands of the plan
run, as ECS runs them (entryPoint + command), in a virtualenv holding only
the image's runtime dependencies.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsgrpc_apps.local.emulator import AwsEmulator
from ecsgrpc_apps.workflow import settings as workflow_settings
from tests.support.runtime_venv import runtime_venv
from tests.support.terraform_cli import (
    Workspace,
    add_autoscaling_tag_actions,
    planned_resources,
    skip_reason,
    terraform_binary,
)

_REASON = skip_reason()
pytestmark = [
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
    pytest.mark.timeout(900),
]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = "examples/complete"
REGION = "eu-west-1"
MODULE = "module.ecsgrpc"


@pytest.fixture(scope="module")
def emulator() -> Iterator[AwsEmulator]:
    add_autoscaling_tag_actions()
    with AwsEmulator() as aws:
        yield aws


@pytest.fixture(scope="module")
def network(emulator: AwsEmulator) -> dict[str, Any]:
    """A VPC (DNS support and hostnames on), two private subnets and a client security group."""
    import boto3

    ec2 = boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=emulator.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    ]
    client_sg = ec2.create_security_group(GroupName="alb", Description="alb", VpcId=vpc)["GroupId"]
    return {"vpc_id": vpc, "private_subnet_ids": subnets, "client_sg": client_sg}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, emulator: AwsEmulator) -> Workspace:
    ws = Workspace(
        tmp_path_factory.mktemp("tf"),
        {
            "AWS_ENDPOINT_URL": emulator.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
        },
    )
    ws.init(EXAMPLE)
    return ws


def example_vars(network: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "region": REGION,
        "vpc_id": network["vpc_id"],
        "private_subnet_ids": network["private_subnet_ids"],
        "agent_image": "ecsgrpc:test",
        "gateway_image": "ecsgrpc:test",
        "gateway_client_security_group_ids": [network["client_sg"]],
        # moto runs no tasks: a steady state would never come.
        "wait_for_steady_state": False,
        **extra,
    }


@pytest.fixture(scope="module")
def plan_off(workspace: Workspace, network: dict[str, Any]) -> dict[str, Any]:
    var_file = workspace.write_vars(EXAMPLE, "off", example_vars(network))
    return workspace.plan(EXAMPLE, var_file, "off.tfplan")


def containers(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    resources = planned_resources(plan)
    found = {}
    for name in ("agent", "gateway"):
        values = resources[f"{MODULE}.aws_ecs_task_definition.{name}"]
        (definition,) = json.loads(values["container_definitions"])
        found[name] = definition
    return found


# --- static checks -----------------------------------------------------------------


def test_terraform_fmt_check_passes() -> None:
    binary = terraform_binary()
    assert binary is not None
    result = subprocess.run(
        [binary, "fmt", "-check", "-recursive", "-diff", str(ROOT / "infra" / "terraform")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_terraform_validate_passes(workspace: Workspace) -> None:
    result = workspace.run(EXAMPLE, "validate")
    assert "The configuration is valid" in result.stdout


# --- plans -------------------------------------------------------------------------


def test_plan_without_the_nlb(plan_off: dict[str, Any]) -> None:
    resources = planned_resources(plan_off)
    assert not [a for a in resources if ".aws_lb." in a or "aws_lb_listener" in a]
    # Autoscaling on both services: CPU, and the agents' in-flight conversations.
    for name in ("agent", "gateway"):
        target = resources[f'{MODULE}.aws_appautoscaling_target.this["{name}"]']
        assert (target["min_capacity"], target["max_capacity"]) == (2, 10)
        assert target["resource_id"] == f"service/ecsgrpc-example/workflow-{name}"
        cpu = resources[f'{MODULE}.aws_appautoscaling_policy.cpu["{name}"]']
        (config,) = cpu["target_tracking_scaling_policy_configuration"]
        assert config["target_value"] == 60
        assert config["scale_in_cooldown"] > containers(plan_off)["agent"]["stopTimeout"]
    (load,) = resources[f"{MODULE}.aws_appautoscaling_policy.agent_conversations[0]"][
        "target_tracking_scaling_policy_configuration"
    ]
    (metric,) = load["customized_metric_specification"]
    assert metric["metric_name"] == "ConversationsInFlight"
    assert metric["namespace"] == "ecsgrpc"
    dims = {d["name"]: d["value"] for d in metric["dimensions"]}
    assert dims == {"ClusterName": "ecsgrpc-example", "ServiceName": "workflow-agent"}
    # The agent is told to publish exactly that metric, with those dimensions.
    env = {e["name"]: e["value"] for e in containers(plan_off)["agent"]["environment"]}
    assert env["AGENT_METRICS_NAMESPACE"] == "ecsgrpc"
    assert (
        env["AGENT_METRICS_DIMENSIONS"] == "ClusterName=ecsgrpc-example,ServiceName=workflow-agent"
    )
    # Capacity providers, deployment alarms, the gateway reachable from the client SG.
    for name in ("agent", "gateway"):
        service = resources[f"{MODULE}.aws_ecs_service.{name}"]
        assert service.get("launch_type") is None
        strategy = {s["capacity_provider"]: s for s in service["capacity_provider_strategy"]}
        assert set(strategy) == {"FARGATE", "FARGATE_SPOT"}
        assert strategy["FARGATE"]["base"] == 1
        (alarms,) = service["alarms"]
        assert alarms["alarm_names"] == [f"workflow-{name}-deployment-cpu"]
        assert alarms["rollback"] is True and alarms["enable"] is True
        assert service["wait_for_steady_state"] is False
    ingress = [
        v
        for a, v in resources.items()
        if "aws_vpc_security_group_ingress_rule.gateway_from_clients" in a
    ]
    assert [r["from_port"] for r in ingress] == [8080]
    # IAM role names carry the region (IAM is global to the account).
    roles = sorted(v["name"] for a, v in resources.items() if ".aws_iam_role." in a)
    assert roles == [
        "workflow-agent-task-eu-west-1",
        "workflow-ecs-execution-eu-west-1",
        "workflow-gateway-task-eu-west-1",
    ]


def test_plan_with_the_nlb_admits_its_callers(
    workspace: Workspace, network: dict[str, Any]
) -> None:
    var_file = workspace.write_vars(
        EXAMPLE,
        "on",
        example_vars(
            network,
            enable_nlb=True,
            max_connection_age_seconds=30,
            nlb_client_cidr_blocks=["10.30.0.0/16"],
        ),
    )
    resources = planned_resources(workspace.plan(EXAMPLE, var_file, "on.tfplan"))
    assert resources[f"{MODULE}.aws_lb.agent[0]"]["internal"] is True
    assert resources[f"{MODULE}.aws_lb_listener.agent[0]"]["port"] == 50051
    callers = [
        v
        for a, v in resources.items()
        if "aws_vpc_security_group_ingress_rule.nlb_from_client" in a
    ]
    assert [(r["cidr_ipv4"], r["from_port"]) for r in callers] == [("10.30.0.0/16", 50051)]
    # No NLB callers at all is refused by name.
    bad = workspace.write_vars(
        EXAMPLE, "on-closed", example_vars(network, enable_nlb=True, max_connection_age_seconds=30)
    )
    refused = workspace.run(
        EXAMPLE, "plan", "-input=false", f"-var-file={bad}", check=False, timeout=300
    )
    assert refused.returncode != 0
    assert "nlb_client_security_group_ids or nlb_client_cidr_blocks" in one_line(refused.stderr)


def one_line(text: str) -> str:
    """Terraform's error box as one line: its borders and line wraps removed."""
    return re.sub(r"[\s│╷╵]+", " ", text)


def module_root(workspace: Workspace, name: str, inputs: dict[str, Any]) -> str:
    """A root module (JSON syntax) that calls the module with ``inputs``."""
    where = f"roots/{name}"
    path = workspace.root / where
    path.mkdir(parents=True)
    config = {
        "provider": {"aws": {"region": REGION}},
        "module": {"ecsgrpc": {"source": "../../modules/ecsgrpc", **inputs}},
    }
    (path / "main.tf.json").write_text(json.dumps(config))
    return where


REQUIRED = {
    "vpc_id": "vpc-0123456789abcdef0",
    "private_subnet_ids": ["subnet-0123456789abcdef0"],
    "cluster_arn": "arn:aws:ecs:eu-west-1:123456789012:cluster/demo",
    "agent_image": "ecsgrpc:test",
    "gateway_image": "ecsgrpc:test",
}


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"agent_cpu": 256, "agent_memory": 4096}, "agent_memory is not a Fargate size"),
        ({"enable_execute_command": True}, "needs readonly_root_filesystem = false"),
        ({"agent_command": ["ecsgrpc", "agent"]}, "agent_command must be the arguments"),
    ],
    ids=["fargate-size", "exec-on-read-only-fs", "command-repeats-entrypoint"],
)
def test_plan_refuses_inputs_that_would_fail_at_apply(
    workspace: Workspace, inputs: dict[str, Any], message: str
) -> None:
    name = re.sub(r"[^a-z]+", "-", message)[:40]
    where = module_root(workspace, name, {**REQUIRED, **inputs})
    workspace.init(where)
    result = workspace.run(where, "plan", "-input=false", check=False)
    assert result.returncode != 0
    assert message in one_line(result.stderr), result.stderr


# --- the container commands as ECS runs them ---------------------------------------------


def image_entrypoint_and_cmd() -> tuple[list[str], list[str]]:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.MULTILINE)[1])  # type: ignore[index]
    cmd = json.loads(re.search(r"^CMD (.+)$", text, re.MULTILINE)[1])  # type: ignore[index]
    return entrypoint, cmd


def ecs_argv(container: dict[str, Any]) -> list[str]:
    """What ECS runs: entryPoint (else the image's ENTRYPOINT) + command (else CMD)."""
    entrypoint, cmd = image_entrypoint_and_cmd()
    return [*(container.get("entryPoint") or entrypoint), *(container.get("command") or cmd)]


def test_the_planned_commands_run_with_only_the_images_runtime_dependencies(
    plan_off: dict[str, Any],
) -> None:
    venv = runtime_venv()
    bin_dir = venv / "bin"
    defs = containers(plan_off)
    assert ecs_argv(defs["agent"]) == ["ecsgrpc", "agent"]
    assert ecs_argv(defs["gateway"])[:2] == ["ecsgrpc", "gateway"]
    for name, definition in defs.items():
        argv = ecs_argv(definition)
        result = subprocess.run(
            [str(bin_dir / argv[0]), *argv[1:], "--help"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{name}: {argv}: {result.stdout}{result.stderr}"
        # The container health check's program exists in the same venv.
        health = definition["healthCheck"]["command"]
        assert health[0] == "CMD" and (bin_dir / health[1]).exists(), health
    probe = subprocess.run(
        [str(bin_dir / "ecsgrpc"), "probe", "--help"], capture_output=True, timeout=120
    )
    assert probe.returncode == 0
    # The image without the tools of development: nothing the commands do not import.
    listed = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert not installed & {"moto", "pytest", "matplotlib", "selenium", "hypothesis", "mypy"}


def test_the_repeated_entrypoint_fails_as_the_issue_measured() -> None:
    """The old module command (["ecsgrpc", "agent"] after ENTRYPOINT ecsgrpc) exits 2
    with a one-line error, even where the demo and bench extras are absent."""
    venv = runtime_venv()
    result = subprocess.run(
        [str(venv / "bin" / "ecsgrpc"), "ecsgrpc", "agent", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    # argparse's words for an unknown command, on one line, naming it.
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid choice: 'ecsgrpc'" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    listed = subprocess.run(
        [str(venv / "bin" / "ecsgrpc"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0 and "agent" in listed.stdout, listed.stderr


# --- apply and destroy against moto ----------------------------------------------------


def test_apply_then_destroy_against_moto(
    workspace: Workspace, plan_off: dict[str, Any], emulator: AwsEmulator
) -> None:
    workspace.run(EXAMPLE, "apply", "-input=false", "-auto-approve", "off.tfplan", timeout=600)
    try:
        outputs = json.loads(workspace.run(EXAMPLE, "output", "-json").stdout)
        target = outputs["workflow_service_target"]["value"]
        assert target == workflow_settings.DEFAULT_WORKFLOW_SERVICE_TARGET
        import boto3

        sd = boto3.client(
            "servicediscovery",
            region_name=REGION,
            endpoint_url=emulator.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        (namespace,) = [
            n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == "workflow.local"
        ]
        assert namespace["Type"] == "DNS_PRIVATE"
        (service,) = [
            s
            for s in sd.list_services()["Services"]
            if s["Name"] == workflow_settings.DEFAULT_CLOUDMAP_SERVICE
        ]
        # Register two tasks the way ECS does with A records only: instance id =
        # task id, the ENI's IPv4 (no port attribute), the zone, the cluster and
        # service names, health from ECS.
        for i, zone in ((11, "a"), (12, "b")):
            sd.register_instance(
                ServiceId=service["Id"],
                InstanceId=f"0f1e2d3c4b5a69788796a5b4c3d2e1f{i}",
                Attributes={
                    "AWS_INSTANCE_IPV4": f"10.20.1.{i}",
                    "AVAILABILITY_ZONE": f"{REGION}{zone}",
                    "AWS_INIT_HEALTH_STATUS": "HEALTHY",
                    "ECS_CLUSTER_NAME": "ecsgrpc-example",
                    "ECS_SERVICE_NAME": "workflow-agent",
                    "ECS_TASK_DEFINITION_FAMILY": "workflow-agent",
                    "REGION": REGION,
                },
            )
        found = subprocess.run(
            [sys.executable, "-m", "ecsgrpc", "discover", target, "--json"],
            env={**workspace.env, "AWS_DEFAULT_REGION": REGION},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert found.returncode == 0, found.stderr
        endpoints = json.loads(found.stdout)
        assert sorted((e["host"], e["port"]) for e in endpoints) == [
            ("10.20.1.11", 50051),
            ("10.20.1.12", 50051),
        ]
        assert {e["source"] for e in endpoints} == {"cloudmap"}
        # ECS deregisters its tasks when the service goes; Cloud Map refuses to
        # delete a service that still has instances.
        for i in (11, 12):
            sd.deregister_instance(
                ServiceId=service["Id"], InstanceId=f"0f1e2d3c4b5a69788796a5b4c3d2e1f{i}"
            )
    finally:
        workspace.run(
            EXAMPLE,
            "destroy",
            "-input=false",
            "-auto-approve",
            f"-var-file={workspace.root / EXAMPLE / 'off.tfvars.json'}",
            timeout=600,
        )
    state = workspace.run(EXAMPLE, "state", "list", check=False)
    assert state.stdout.strip() == ""


def test_the_plans_container_definitions_are_what_the_evaluator_gives(
    plan_off: dict[str, Any],
) -> None:
    """tests/test_terraform.py and tests/image evaluate the module in Python; the
    values ECS gets from the real plan are the same."""
    from tests.support.terraform import Evaluator, load_module

    planned = containers(plan_off)
    module = load_module(ROOT / "infra" / "terraform" / "modules" / "ecsgrpc")
    ev = Evaluator(
        module,
        {
            "vpc_id": "vpc-0123456789abcdef0",
            "private_subnet_ids": ["subnet-0123456789abcdef0"],
            "cluster_arn": f"arn:aws:ecs:{REGION}:123456789012:cluster/ecsgrpc-example",
            "agent_image": "ecsgrpc:test",
            "gateway_image": "ecsgrpc:test",
        },
    )
    for name in ("agent", "gateway"):
        (evaluated,) = json.loads(
            ev.attr(("aws_ecs_task_definition", name), "container_definitions")
        )
        for key in (
            "entryPoint",
            "command",
            "environment",
            "healthCheck",
            "readonlyRootFilesystem",
            "linuxParameters",
            "portMappings",
            "stopTimeout",
        ):
            assert planned[name][key] == evaluated[key], (name, key)
        # The evaluator knows the log group only as a reference to the resource.
        planned_log, evaluated_log = (
            planned[name]["logConfiguration"],
            evaluated["logConfiguration"],
        )
        assert evaluated_log["options"]["awslogs-group"] == f"aws_cloudwatch_log_group.{name}.name"
        assert planned_log["options"].pop("awslogs-group") == f"/ecs/workflow-{name}"
        evaluated_log["options"].pop("awslogs-group")
        assert planned_log == evaluated_log
