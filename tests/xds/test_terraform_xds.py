"""The module's xDS option (infra/terraform/modules/ecsgrpc/xds.tf), evaluated
for chosen inputs and checked against the code: the control plane's command
is one our CLI accepts, its health check names our ADS service, the gateway's
environment is what the Workflow client reads, and access is least-privilege."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from ecsgrpc.xds.channel import SERVERS_ENV, check_xds_target
from ecsgrpc.xds.config import parse_service
from ecsgrpc.xds.server import ADS_SERVICE
from tests.support.terraform import Evaluator, Module, load_module
from tests.test_terraform import MODULE_DIR, REQUIRED, policy_documents

XDS_ON = {**REQUIRED, "enable_xds_control_plane": True, "gateway_uses_xds": True}
XDS_RESOURCES = [
    ("aws_service_discovery_service", "xds"),
    ("aws_cloudwatch_log_group", "xds"),
    ("aws_iam_role", "xds_task"),
    ("aws_security_group", "xds"),
    ("aws_ecs_task_definition", "xds"),
    ("aws_ecs_service", "xds"),
    ("aws_vpc_security_group_ingress_rule", "agent_from_xds"),
    ("aws_vpc_security_group_egress_rule", "gateway_to_xds"),
]


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module(MODULE_DIR)


def _container(ev: Evaluator, name: str) -> dict[str, Any]:
    (definition,) = json.loads(ev.attr(("aws_ecs_task_definition", name), "container_definitions"))
    return definition  # type: ignore[no-any-return]


def _env(definition: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in definition["environment"]}


def test_off_by_default_and_the_gateway_unchanged(module: Module) -> None:
    ev = Evaluator(module, REQUIRED)
    assert [ev.attr(r, "count") for r in XDS_RESOURCES] == [0] * len(XDS_RESOURCES)
    env = _env(_container(ev, "gateway"))
    assert SERVERS_ENV not in env and not env["WORKFLOW_SERVICE_TARGET"].startswith("xds:")


def test_control_plane_command_and_health_check_are_what_the_code_serves(module: Module) -> None:
    ev = Evaluator(module, XDS_ON)
    assert [ev.attr(r, "count") for r in XDS_RESOURCES] == [1] * len(XDS_RESOURCES)
    xds = _container(ev, "xds")
    # ECS runs ENTRYPOINT + command: ["ecsgrpc"] + ["xds", "serve", ...].
    assert xds["entryPoint"] == ["ecsgrpc"]
    command = ["ecsgrpc", *xds["command"]]
    assert command[:3] == ["ecsgrpc", "xds", "serve"]
    service = parse_service(command[command.index("--service") + 1])
    assert service.name == "workflow-agent"
    assert service.target == "cloudmap://workflow.local/workflow-agent?port=50051&poll=5"
    assert xds["portMappings"][0]["containerPort"] == int(command[command.index("--port") + 1])
    health = xds["healthCheck"]["command"]
    assert health[1:3] == ["ecsgrpc", "probe"] and ADS_SERVICE in health
    # Every flag of the command exists: the CLI parses it (--help stops before serving).
    done = subprocess.run(
        [sys.executable, "-m", "ecsgrpc", *command[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_gateway_on_xds_gets_the_target_and_the_servers_it_reads(module: Module) -> None:
    ev = Evaluator(module, XDS_ON)
    env = _env(_container(ev, "gateway"))
    assert check_xds_target(env["WORKFLOW_SERVICE_TARGET"]) == "xds:///workflow-agent"
    assert env[SERVERS_ENV] == "xds.workflow.local:18000"
    assert ev.eval(module.outputs["xds_servers"].attrs["value"]) == env[SERVERS_ENV]


def test_control_plane_is_reached_from_client_security_groups_only(module: Module) -> None:
    ev = Evaluator(module, {**XDS_ON, "xds_client_security_group_ids": ["sg-0aaaaaaaaaaaaaaaa"]})
    xds_sg = "aws_security_group.xds[0].id"
    sources = []
    for (rtype, name), body in module.resources.items():
        if rtype != "aws_vpc_security_group_ingress_rule":
            continue
        if ev.eval(body.attrs["security_group_id"]) != xds_sg:
            continue
        assert not {"cidr_ipv4", "cidr_ipv6", "prefix_list_id"} & set(body.attrs), name
        ref = body.attrs["referenced_security_group_id"]
        sources.append(ev.eval(ref, {"each": {"value": "sg-0aaaaaaaaaaaaaaaa"}}))
    assert sorted(sources) == ["aws_security_group.gateway.id", "sg-0aaaaaaaaaaaaaaaa"]


def test_control_plane_role_may_discover_and_nothing_else(module: Module) -> None:
    docs = policy_documents(module, Evaluator(module, XDS_ON))
    doc = docs["aws_iam_role_policy.xds_task.policy"]
    actions = sorted(a for st in doc["Statement"] for a in st["Action"])
    assert actions == [
        "ecs:DescribeTasks",
        "ecs:ListTasks",
        "servicediscovery:DiscoverInstances",
        "servicediscovery:DiscoverInstancesRevision",
    ]
    logs = docs["aws_iam_role_policy.xds_execution.policy"]["Statement"][-1]
    assert logs["Resource"] == ["aws_cloudwatch_log_group.xds[0].arn:*"]


@pytest.mark.parametrize(
    ("inputs", "variable"),
    [
        ({"gateway_uses_xds": True}, "gateway_uses_xds"),
        ({"xds_client_security_group_ids": ["10.0.0.0/8"]}, "xds_client_security_group_ids"),
        ({"xds_port": 0}, "xds_port"),
        ({"xds_desired_count": 0}, "xds_desired_count"),
        ({"xds_cloudmap_service_name": "Bad_Name"}, "xds_cloudmap_service_name"),
    ],
)
def test_bad_xds_inputs_are_refused_by_name(
    module: Module, inputs: dict[str, Any], variable: str
) -> None:
    errors = Evaluator(module, {**REQUIRED, **inputs}).validation_errors()
    assert errors and all(e.startswith(f"{variable}:") for e in errors), errors
