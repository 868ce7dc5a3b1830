"""The Terraform module (infra/terraform) read as data, evaluated, and checked against the code.

Every .tf file is parsed with python-hcl2 and the module's expressions are
evaluated by tests/support/terraform.py for chosen inputs: fast, and able to
run the health-check commands against real servers for any input. The real
terraform binary (validate, plan, apply against moto) is
tests/test_terraform_cli.py. The guard tests (CIDR on the agent, matcher on a
TCP target group, wildcard IAM actions) are each shown to fail on a mutated
copy of the module.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest

from ecsgrpc import config
from ecsgrpc.config import ServerSettings, load
from ecsgrpc_apps.workflow import settings as workflow_settings
from tests.support.agents import AgentProcess
from tests.support.terraform import Evaluator, HclError, Module, Ref, load_module, references

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
TF_ROOT = ROOT / "infra" / "terraform"
MODULE_DIR = TF_ROOT / "modules" / "ecsgrpc"
EXAMPLE_DIR = TF_ROOT / "examples" / "complete"

CLUSTER_ARN = "arn:aws:ecs:eu-west-1:111122223333:cluster/demo"
REQUIRED = {
    "vpc_id": "vpc-0123456789abcdef0",
    "private_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
    "cluster_arn": CLUSTER_ARN,
    "agent_image": "registry.example/ecsgrpc:1",
    "gateway_image": "registry.example/ecsgrpc:1",
}
# Every optional feature on, so every optional policy statement and rule exists.
ALL_FEATURES = {
    **REQUIRED,
    "enable_nlb": True,
    "max_connection_age_seconds": 30,
    "enable_execute_command": True,
    "readonly_root_filesystem": False,
    "enable_srv_records": True,
    "ecr_repository_arns": ["arn:aws:ecr:eu-west-1:111122223333:repository/ecsgrpc"],
    "aws_api_egress_prefix_list_ids": ["pl-0123456789abcdef0"],
    "gateway_ingress_security_group_ids": ["sg-0123456789abcdef0"],
    "nlb_client_security_group_ids": ["sg-0fedcba9876543210"],
    "nlb_client_cidr_blocks": ["10.1.0.0/16"],
    "enable_xds_control_plane": True,
    "gateway_uses_xds": True,
    "xds_client_security_group_ids": ["sg-0aaaaaaaaaaaaaaaa"],
}
TCP_PROTOCOLS = {"TCP", "TLS", "UDP", "TCP_UDP"}


@pytest.fixture(scope="module")
def module() -> Module:
    return load_module(MODULE_DIR)


def evaluator(module: Module, **inputs: Any) -> Evaluator:
    return Evaluator(module, {**REQUIRED, **inputs})


def container(ev: Evaluator, name: str) -> dict[str, Any]:
    (definition,) = json.loads(ev.attr(("aws_ecs_task_definition", name), "container_definitions"))
    return definition  # type: ignore[no-any-return]


def env_of(definition: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in definition["environment"]}


# --- parsing ---------------------------------------------------------------------


TF_FILES = sorted(TF_ROOT.rglob("*.tf"))


def test_the_module_and_the_example_exist() -> None:
    assert {p.parent for p in TF_FILES} == {MODULE_DIR, EXAMPLE_DIR}
    assert {p.name for p in MODULE_DIR.glob("*.tf")} >= {
        "versions.tf",
        "variables.tf",
        "outputs.tf",
        "cloudmap.tf",
        "ecs.tf",
        "nlb.tf",
        "iam.tf",
        "security_groups.tf",
        "logs.tf",
    }


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TF_ROOT)))
def test_every_tf_file_parses(path: Path) -> None:
    with path.open() as f:
        parsed = hcl2.load(f)
    assert set(parsed) - {"__comments__"}, f"{path} declares nothing"


def test_versions_pin_terraform_and_the_aws_provider(module: Module) -> None:
    (terraform,) = [b for b in module.blocks if b.kind == "terraform"]
    ev = Evaluator(module, REQUIRED)
    assert ev.eval(terraform.body.attrs["required_version"]) == ">= 1.9.0"
    providers = terraform.body.block("required_providers")
    assert providers is not None
    aws = ev.eval(providers.body.attrs["aws"])
    assert aws["source"] == "hashicorp/aws"
    assert aws["version"].startswith(">= 5.") and "< 7.0.0" in aws["version"]


def test_every_reference_is_declared(module: Module) -> None:
    """A poor man's `terraform validate`: var., local. and resource references resolve."""
    declared_types = {t for t, _ in module.resources}
    roots: set[tuple[str, ...]] = set()
    trees = [*module.locals.values()]
    for body in [*module.resources.values(), *module.outputs.values(), *module.variables.values()]:
        stack = [body]
        while stack:
            b = stack.pop()
            trees.extend(b.attrs.values())
            stack.extend(blk.body for blk in b.blocks)
    for tree in trees:
        roots.update(references(tree))
    # Names bound by `for` expressions (for s in ...) are not references.
    bound = {
        str(ident.children[0])
        for tree in trees
        for intro in tree.iter_subtrees()
        if intro.data == "for_intro"
        for ident in intro.children
        if hasattr(ident, "data") and ident.data == "identifier"
    }
    roots = {(root, name) for root, name in roots if root not in bound}
    for root, name in roots:
        if root == "var":
            assert name in module.variables, f"var.{name} is not declared"
        elif root == "local":
            assert name in module.locals, f"local.{name} is not declared"
        elif root in declared_types:
            assert (root, name) in module.resources, f"{root}.{name} is not declared"
        else:
            # dynamic-block iterators and each/count
            assert root in {
                "each",
                "count",
                "dns_records",
                "load_balancer",
                "alarms",
                "capacity_provider_strategy",
            }, (root, name)


def test_every_variable_has_a_type_and_a_description(module: Module) -> None:
    for name, body in module.variables.items():
        assert "type" in body.attrs, f"variable {name} has no type"
        assert "description" in body.attrs, f"variable {name} has no description"
    for name, body in module.outputs.items():
        assert "description" in body.attrs, f"output {name} has no description"


def test_the_example_passes_every_required_input_and_nothing_unknown(module: Module) -> None:
    example = load_module(EXAMPLE_DIR)
    (call,) = example.modules.values()
    ev = Evaluator(example, {k: v for k, v in REQUIRED.items() if k in example.variables})
    assert ev.eval(call.attrs["source"]) == "../../modules/ecsgrpc"
    assert (EXAMPLE_DIR / "../../modules/ecsgrpc").resolve() == MODULE_DIR
    given = set(call.attrs) - {"source", "depends_on"}
    assert given <= set(module.variables), given - set(module.variables)
    required = {n for n, b in module.variables.items() if "default" not in b.attrs}
    assert required <= given, required - given
    text = "".join(p.read_text() for p in EXAMPLE_DIR.iterdir())
    # No real account id: no 12-digit number anywhere in the example.
    assert re.findall(r"(?<![0-9])[0-9]{12}(?![0-9])", text) == []


# --- consistency with the Python defaults -------------------------------------------


def test_module_defaults_agree_with_the_python_defaults(module: Module) -> None:
    ev = evaluator(module)
    assert ev.var("grpc_port") == config.DEFAULT_GRPC_PORT
    assert ev.var("drain_seconds") == config.DEFAULT_DRAIN_SECONDS
    assert ev.var("grace_seconds") == config.DEFAULT_GRACE_SECONDS
    assert ev.var("cloudmap_namespace") == workflow_settings.DEFAULT_CLOUDMAP_NAMESPACE
    assert ev.var("cloudmap_service_name") == workflow_settings.DEFAULT_CLOUDMAP_SERVICE
    assert ev.var("cloudmap_dns_ttl") == workflow_settings.DEFAULT_CLOUDMAP_DNS_TTL_SECONDS
    assert ev.local("workflow_service_target") == workflow_settings.DEFAULT_WORKFLOW_SERVICE_TARGET
    assert ev.local("client_keepalive_seconds") == config.DEFAULT_CLIENT_KEEPALIVE_SECONDS
    assert ev.var("nlb_tcp_idle_timeout_seconds") == config.NLB_DEFAULT_TCP_IDLE_TIMEOUT_SECONDS
    assert ev.var("nlb_tcp_idle_timeout_seconds") > config.DEFAULT_CLIENT_KEEPALIVE_SECONDS
    assert (ev.var("agent_cpu"), ev.var("agent_memory")) == (512, 1024)
    assert ev.validation_errors() == []
    assert ev.precondition_errors() == []


def test_stop_timeout_leaves_room_for_drain_and_grace(module: Module) -> None:
    ev = evaluator(module)
    agent = container(ev, "agent")
    assert agent["stopTimeout"] == 30
    assert agent["stopTimeout"] > config.DEFAULT_DRAIN_SECONDS + config.DEFAULT_GRACE_SECONDS + 5
    # The same rule is enforced on any input: a validation refuses the overrun.
    errors = evaluator(module, drain_seconds=10, grace_seconds=20).validation_errors()
    assert len(errors) == 1 and errors[0].startswith("stop_timeout_seconds:"), errors
    assert evaluator(module, stop_timeout_seconds=121).validation_errors()


def test_agent_environment_is_what_the_server_reads(
    module: Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every GRPC_* variable the task sets is a ServerSettings field, and loads as meant."""
    ev = evaluator(module, max_connection_age_seconds=45)
    env = env_of(container(ev, "agent"))
    assert env["GRPC_HOST"] == "0.0.0.0"
    assert env["GRPC_PORT"] == str(config.DEFAULT_GRPC_PORT)
    prefix = ServerSettings.ENV_PREFIX
    fields = set(config.env_names(ServerSettings).values())
    assert {k for k in env if k.startswith(prefix)} <= fields, set(env) - fields
    for key in fields:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load(ServerSettings)
    assert settings.host == "0.0.0.0"
    assert settings.port == config.DEFAULT_GRPC_PORT
    assert settings.drain_seconds == config.DEFAULT_DRAIN_SECONDS
    assert settings.grace_seconds == config.DEFAULT_GRACE_SECONDS
    assert settings.max_connection_age_seconds == 45
    assert settings.log_json is True
    # Not set at all unless asked for.
    assert "GRPC_MAX_CONNECTION_AGE_SECONDS" not in env_of(container(evaluator(module), "agent"))


def test_gateway_target_is_built_from_the_module_names(module: Module) -> None:
    gateway = container(evaluator(module), "gateway")
    env = env_of(gateway)
    assert (
        env[workflow_settings.WORKFLOW_SERVICE_TARGET_ENV]
        == workflow_settings.DEFAULT_WORKFLOW_SERVICE_TARGET
    )
    assert env["AWS_REGION"] == "eu-west-1"  # from the cluster ARN
    renamed = evaluator(
        module, cloudmap_namespace="svc.internal", cloudmap_service_name="agents", grpc_port=6000
    )
    assert env_of(container(renamed, "gateway"))["WORKFLOW_SERVICE_TARGET"] == (
        "cloudmap://svc.internal/agents?port=6000|dns:///agents.svc.internal:6000"
    )
    # ECS runs entryPoint + command.
    assert gateway["entryPoint"] == ["ecsgrpc"]
    assert gateway["command"] == ["gateway", "--host", "0.0.0.0", "--port", "8080"]
    assert gateway["portMappings"][0]["containerPort"] == 8080


def test_container_commands_exist_in_the_cli(module: Module) -> None:
    agent = container(evaluator(module), "agent")
    assert agent["entryPoint"] == ["ecsgrpc"]
    assert agent["command"] == ["agent"]
    for sub in ("agent", "probe"):
        result = subprocess.run(
            [sys.executable, "-m", "ecsgrpc", sub, "--help"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
    probe_help = subprocess.run(
        [sys.executable, "-m", "ecsgrpc", "probe", "--help"], capture_output=True, text=True
    ).stdout
    assert "--timeout" in probe_help


def test_outputs_are_the_client_targets(module: Module) -> None:
    ev = evaluator(module)
    out = {name: ev.eval(body.attrs["value"]) for name, body in module.outputs.items()}
    assert out["cloudmap_target"] == "cloudmap://workflow.local/workflow-agent?port=50051"
    assert out["dns_target"] == "dns:///workflow-agent.workflow.local:50051"
    assert out["workflow_service_target"] == workflow_settings.DEFAULT_WORKFLOW_SERVICE_TARGET
    assert out["nlb_dns_name"] is None and out["nlb_target"] is None
    assert out["nlb_security_group_id"] is None and out["srv_target"] is None
    assert isinstance(out["agent_security_group_id"], Ref)
    on = evaluator(module, enable_nlb=True, max_connection_age_seconds=30, enable_srv_records=True)
    assert on.eval(module.outputs["nlb_dns_name"].attrs["value"]) == "aws_lb.agent[0].dns_name"
    assert on.eval(module.outputs["srv_target"].attrs["value"]) == (
        "dns+srv:///workflow-agent.workflow.local"
    )


# --- the health checks, run for real ------------------------------------------------


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _run_health(command: list[str], timeout: float = 15) -> int:
    assert command[0] == "CMD"  # exec form: no shell in between
    argv = command[1:]
    if argv[0] == "ecsgrpc":
        argv = [str(Path(sys.executable).parent / "ecsgrpc"), *argv[1:]]
    elif argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    return subprocess.run(argv, capture_output=True, timeout=timeout).returncode


@pytest.mark.timeout(90)
def test_agent_health_check_command_tracks_the_server(
    module: Module, agents: Callable[..., AgentProcess]
) -> None:
    agent = agents("127.0.0.1", args=("--drain-seconds", "5"))
    command = container(evaluator(module, grpc_port=agent.port), "agent")["healthCheck"]["command"]
    assert command == ["CMD", "ecsgrpc", "probe", f"127.0.0.1:{agent.port}", "--timeout", "2"]
    assert _run_health(command) == 0
    # SIGTERM: during the drain the probe reports NOT_SERVING (exit 4), so ECS
    # and Cloud Map see the task leave while it still finishes its calls.
    agent.signal(signal.SIGTERM)
    assert _run_health(command) == 4
    agent.wait(timeout=30)
    assert _run_health(command) == 2  # nothing listens: connection failure


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_health() -> Iterator[Callable[[int], int]]:
    servers: list[http.server.HTTPServer] = []

    def start(status: int) -> int:
        handler = type("Handler", (_Health,), {"status": status})
        server = http.server.HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_gateway_health_check_command_needs_a_2xx_healthz(
    module: Module, http_health: Callable[[int], int]
) -> None:
    def command(port: int) -> list[str]:
        return container(evaluator(module, gateway_port=port), "gateway")["healthCheck"]["command"]

    assert _run_health(command(http_health(200))) == 0
    assert _run_health(command(http_health(503))) != 0
    assert _run_health(command(_free_port("127.0.0.1"))) != 0


# --- Cloud Map, ECS service, NLB settings ---------------------------------------------


def test_cloud_map_service_is_multivalue_a_records_with_ecs_health(module: Module) -> None:
    body = module.resources[("aws_service_discovery_service", "agent")]
    ev = evaluator(module)
    dns = body.block("dns_config")
    assert dns is not None
    assert ev.eval(dns.body.attrs["routing_policy"]) == "MULTIVALUE"
    (records,) = dns.body.all("dynamic")
    assert records.labels == ("dns_records",)
    assert ev.eval(records.body.attrs["for_each"]) == ["A"]
    assert evaluator(module, enable_srv_records=True).eval(records.body.attrs["for_each"]) == [
        "A",
        "SRV",
    ]
    content = records.body.block("content")
    assert content is not None
    assert ev.eval(content.body.attrs["ttl"]) == 10
    health = body.block("health_check_custom_config")
    assert health is not None and ev.eval(health.body.attrs["failure_threshold"]) == 1
    assert body.block("health_check_config") is None  # Route 53 checks: public namespaces only


def test_services_roll_safely_and_register_in_cloud_map(module: Module) -> None:
    ev = evaluator(module)
    for name in ("agent", "gateway"):
        body = module.resources[("aws_ecs_service", name)]
        assert ev.eval(body.attrs["deployment_minimum_healthy_percent"]) == 100
        assert ev.eval(body.attrs["deployment_maximum_percent"]) == 200
        breaker = body.block("deployment_circuit_breaker")
        assert breaker is not None
        assert ev.eval(breaker.body.attrs["enable"]) is True
        assert ev.eval(breaker.body.attrs["rollback"]) is True
        assert ev.eval(body.attrs["enable_execute_command"]) is False
        assert ev.eval(body.attrs["launch_type"]) == "FARGATE"
        network = body.block("network_configuration")
        assert network is not None and ev.eval(network.body.attrs["assign_public_ip"]) is False
    agent = module.resources[("aws_ecs_service", "agent")]
    registry = agent.block("service_registries")
    assert registry is not None
    assert ev.eval(registry.body.attrs["registry_arn"]) == "aws_service_discovery_service.agent.arn"
    assert ev.eval(registry.body.attrs["container_port"]) is None  # A records need no port
    srv = evaluator(module, enable_srv_records=True)
    assert srv.eval(registry.body.attrs["container_port"]) == 50051
    assert srv.eval(registry.body.attrs["container_name"]) == "agent"


def test_logs_use_awslogs_with_a_retention(module: Module) -> None:
    ev = evaluator(module, log_retention_days=14)
    for name in ("agent", "gateway"):
        assert container(ev, name)["logConfiguration"]["logDriver"] == "awslogs"
        assert ev.attr(("aws_cloudwatch_log_group", name), "retention_in_days") == 14
    assert evaluator(module, log_retention_days=13).validation_errors()


def test_nlb_target_group_drains_and_terminates(module: Module) -> None:
    ev = evaluator(module, enable_nlb=True, max_connection_age_seconds=30)
    tg = ("aws_lb_target_group", "agent")
    assert ev.attr(tg, "protocol") == "TCP"
    assert ev.attr(tg, "target_type") == "ip"
    assert ev.attr(tg, "connection_termination") is True
    assert ev.attr(tg, "deregistration_delay") == 60
    assert ev.attr(tg, "preserve_client_ip") is False
    assert ev.attr(("aws_lb", "agent"), "internal") is True
    assert ev.attr(("aws_lb_listener", "agent"), "tcp_idle_timeout_seconds") == 350
    assert ev.precondition_errors() == []
    assert evaluator(module).var("enable_nlb") is False


def test_nlb_needs_a_max_connection_age_that_fits_the_deregistration_delay(
    module: Module,
) -> None:
    missing = evaluator(module, enable_nlb=True).validation_errors()
    assert any("needs max_connection_age_seconds" in e for e in missing), missing
    too_long = evaluator(
        module, enable_nlb=True, max_connection_age_seconds=60, nlb_deregistration_delay_seconds=60
    ).validation_errors()
    assert any("must not exceed nlb_deregistration_delay_seconds" in e for e in too_long)
    assert (
        evaluator(module, enable_nlb=True, max_connection_age_seconds=30).validation_errors() == []
    )


@pytest.mark.parametrize(
    ("inputs", "variable"),
    [
        ({"vpc_id": "vpc-nope"}, "vpc_id"),
        ({"private_subnet_ids": []}, "private_subnet_ids"),
        ({"cluster_arn": "demo"}, "cluster_arn"),
        ({"cloudmap_namespace": "Bad Name"}, "cloudmap_namespace"),
        ({"grpc_port": 80}, "grpc_port"),
        ({"agent_cpu": 300}, "agent_cpu"),
        ({"agent_environment": {"GRPC_PORT": "1"}}, "agent_environment"),
        ({"gateway_environment": {"WORKFLOW_SERVICE_TARGET": "x"}}, "gateway_environment"),
        ({"nlb_client_cidr_blocks": ["10.0.0.0/33"]}, "nlb_client_cidr_blocks"),
        ({"nlb_tcp_idle_timeout_seconds": 30}, "nlb_tcp_idle_timeout_seconds"),
        ({"name_prefix": "a-very-long-prefix-name-x"}, "name_prefix"),
        ({"agent_cpu": 256, "agent_memory": 4096}, "agent_memory"),
        ({"agent_cpu": 1024, "agent_memory": 1024}, "agent_memory"),
        ({"gateway_cpu": 8192, "gateway_memory": 20000}, "gateway_memory"),
        ({"agent_command": ["ecsgrpc", "agent"]}, "agent_command"),
        ({"gateway_command": ["ecsgrpc", "gateway"]}, "gateway_command"),
        ({"enable_execute_command": True}, "enable_execute_command"),
        (
            {"capacity_provider_strategy": [{"capacity_provider": "EC2", "weight": 1, "base": 0}]},
            "capacity_provider_strategy",
        ),
        ({"agent_min_count": 0}, "agent_min_count"),
        ({"agent_desired_count": 11}, "agent_max_count"),
        ({"scale_in_cooldown_seconds": 30}, "scale_in_cooldown_seconds"),
        ({"autoscaling_cpu_target_percent": 95}, "autoscaling_cpu_target_percent"),
        ({"metrics_namespace": "AWS/ECS"}, "metrics_namespace"),
        (
            {
                "gateway_alb_arn": "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/a/0123abcd"
            },
            "gateway_alb_arn",
        ),
    ],
)
def test_bad_inputs_are_refused_by_name(
    module: Module, inputs: dict[str, Any], variable: str
) -> None:
    errors = evaluator(module, **inputs).validation_errors()
    # A CPU that is no Fargate size has no memory that pairs with it either.
    also = ("agent_memory:",) if variable == "agent_cpu" else ()
    assert errors and errors[0].startswith(f"{variable}:"), errors
    assert all(e.startswith((f"{variable}:", *also)) for e in errors), errors


# --- guards: each one must catch its defect --------------------------------------------


def agent_cidr_ingress(module: Module, ev: Evaluator) -> list[str]:
    """Rules that admit a CIDR (or prefix list) into the agent's security group."""
    found = []
    agent_sg = "aws_security_group.agent.id"
    sg = module.resources[("aws_security_group", "agent")]
    found += [
        f"inline ingress in aws_security_group.agent: {b.body.attrs}" for b in sg.all("ingress")
    ]
    for (rtype, name), body in module.resources.items():
        if rtype == "aws_vpc_security_group_ingress_rule":
            if ev.eval(body.attrs["security_group_id"]) != agent_sg:
                continue
            for key in ("cidr_ipv4", "cidr_ipv6", "prefix_list_id"):
                if key in body.attrs:
                    found.append(f"{rtype}.{name} admits {key}")
            if "referenced_security_group_id" not in body.attrs:
                found.append(f"{rtype}.{name} names no source security group")
        elif rtype == "aws_security_group_rule" and ev.eval(body.attrs["type"]) == "ingress":
            if ev.eval(body.attrs["security_group_id"]) != agent_sg:
                continue
            for key in ("cidr_blocks", "ipv6_cidr_blocks", "prefix_list_ids", "self"):
                if key in body.attrs:
                    found.append(f"{rtype}.{name} admits {key}")
    return found


def tcp_target_group_matchers(module: Module, ev: Evaluator) -> list[str]:
    """TCP-family target groups whose health check sets `matcher` (invalid for TCP)."""
    found = []
    for (rtype, name), body in module.resources.items():
        if rtype not in ("aws_lb_target_group", "aws_alb_target_group"):
            continue
        protocol = ev.eval(body.attrs["protocol"]) if "protocol" in body.attrs else None
        for check in body.all("health_check"):
            hc_protocol = (
                ev.eval(check.body.attrs["protocol"]) if "protocol" in check.body.attrs else None
            )
            tcp = protocol in TCP_PROTOCOLS or hc_protocol == "TCP"
            if tcp and "matcher" in check.body.attrs:
                found.append(f"{rtype}.{name}: matcher on a {protocol} target group")
    return found


def policy_documents(module: Module, ev: Evaluator) -> dict[str, dict[str, Any]]:
    """Every IAM policy document of the module, parsed from its jsonencode."""
    docs = {}
    attrs = {
        "aws_iam_role": ("assume_role_policy",),
        "aws_iam_role_policy": ("policy",),
        "aws_iam_policy": ("policy",),
    }
    for (rtype, name), body in module.resources.items():
        for attr in attrs.get(rtype, ()):
            if attr in body.attrs:
                text = ev.eval(body.attrs[attr])
                docs[f"{rtype}.{name}.{attr}"] = json.loads(text)
    return docs


def wildcard_actions(module: Module, ev: Evaluator) -> list[str]:
    found = []
    for where, doc in policy_documents(module, ev).items():
        statements = doc["Statement"]
        for st in statements if isinstance(statements, list) else [statements]:
            if "NotAction" in st:
                found.append(f"{where}: NotAction grants everything else")
            actions = st.get("Action", [])
            for action in [actions] if isinstance(actions, str) else actions:
                if "*" in action:
                    found.append(f"{where}: wildcard action {action!r}")
    return found


def test_agent_admits_grpc_only_from_security_groups(module: Module) -> None:
    ev = evaluator(module, **{k: v for k, v in ALL_FEATURES.items() if k not in REQUIRED})
    assert agent_cidr_ingress(module, ev) == []
    sources = sorted(
        ev.eval(body.attrs["referenced_security_group_id"])
        for (rtype, _), body in module.resources.items()
        if rtype == "aws_vpc_security_group_ingress_rule"
        and ev.eval(body.attrs["security_group_id"]) == "aws_security_group.agent.id"
    )
    assert sources == [
        "aws_security_group.gateway.id",
        "aws_security_group.nlb[0].id",
        "aws_security_group.xds[0].id",  # the xDS control plane's health watches
    ]
    egress = module.resources[("aws_vpc_security_group_egress_rule", "gateway_to_agent")]
    assert ev.eval(egress.attrs["referenced_security_group_id"]) == "aws_security_group.agent.id"
    assert ev.eval(egress.attrs["from_port"]) == ev.eval(egress.attrs["to_port"]) == 50051


def test_no_tcp_target_group_sets_a_matcher(module: Module) -> None:
    ev = evaluator(module, enable_nlb=True, max_connection_age_seconds=30)
    assert tcp_target_group_matchers(module, ev) == []
    check = module.resources[("aws_lb_target_group", "agent")].block("health_check")
    assert check is not None and ev.eval(check.body.attrs["protocol"]) == "TCP"


def test_no_iam_policy_has_a_wildcard_action(module: Module) -> None:
    ev = Evaluator(module, ALL_FEATURES)
    docs = policy_documents(module, ev)
    # Trust and permission policies: execution, agent, gateway; with the xDS
    # control plane, its execution and task roles too.
    assert len(docs) == 10
    assert wildcard_actions(module, ev) == []


def test_gateway_role_is_least_privilege(module: Module) -> None:
    ev = Evaluator(module, ALL_FEATURES)
    doc = policy_documents(module, ev)["aws_iam_role_policy.gateway_task.policy"]
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    discover = by_sid["CloudMapDiscoverAgents"]
    assert sorted(discover["Action"]) == [
        "servicediscovery:DiscoverInstances",
        "servicediscovery:DiscoverInstancesRevision",
    ]
    assert discover["Resource"] == "*"  # these actions take no resource ARN
    # ... but AWS's condition keys for them limit them to the module's names.
    assert discover["Condition"] == {
        "StringEquals": {
            "servicediscovery:NamespaceName": "workflow.local",
            "servicediscovery:ServiceName": "workflow-agent",
        }
    }
    for sid, action in (
        ("EcsListTasksInCluster", "ecs:ListTasks"),
        ("EcsDescribeTasksInCluster", "ecs:DescribeTasks"),
    ):
        assert by_sid[sid]["Action"] == [action]
        assert by_sid[sid]["Condition"] == {"ArnEquals": {"ecs:cluster": CLUSTER_ARN}}
    assert by_sid["EcsDescribeTasksInCluster"]["Resource"] == (
        "arn:aws:ecs:eu-west-1:111122223333:task/demo/*"
    )
    off = Evaluator(module, REQUIRED)
    sids = {
        st["Sid"]
        for st in policy_documents(module, off)["aws_iam_role_policy.gateway_task.policy"][
            "Statement"
        ]
    }
    assert sids == {"CloudMapDiscoverAgents", "EcsListTasksInCluster", "EcsDescribeTasksInCluster"}
    trust = policy_documents(module, off)["aws_iam_role.gateway_task.assume_role_policy"]
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "111122223333"}


@pytest.fixture
def mutable_module(tmp_path: Path) -> Callable[[str, str, str], Module]:
    """A copy of the module with one text replacement applied (which must match)."""

    def mutate(filename: str, old: str, new: str) -> Module:
        copy = tmp_path / f"mod-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(MODULE_DIR, copy)
        path = copy / filename
        text = path.read_text()
        assert old in text, f"{old!r} not in {filename}"
        path.write_text(text.replace(old, new, 1))
        return load_module(copy)

    return mutate


def test_cidr_guard_catches_a_cidr_on_the_agent(
    mutable_module: Callable[[str, str, str], Module],
) -> None:
    vpc_wide = mutable_module(
        "security_groups.tf",
        "  referenced_security_group_id = aws_security_group.gateway.id\n",
        '  cidr_ipv4                    = "10.0.0.0/16"\n',
    )
    found = agent_cidr_ingress(vpc_wide, evaluator(vpc_wide))
    assert any("agent_from_gateway admits cidr_ipv4" in f for f in found), found
    tags_line = '  tags        = merge(local.common_tags, { Name = "${local.agent_name}-sg" })'
    inline_ingress = (
        "  ingress {\n    from_port   = 50051\n    to_port     = 50051\n"
        '    protocol    = "tcp"\n    cidr_blocks = ["10.0.0.0/16"]\n  }\n'
    )
    inline = mutable_module("security_groups.tf", tags_line, inline_ingress + tags_line)
    assert any("inline ingress" in f for f in agent_cidr_ingress(inline, evaluator(inline)))


def test_matcher_guard_catches_the_seeds_matcher(
    mutable_module: Callable[[str, str, str], Module],
) -> None:
    seeded = mutable_module(
        "nlb.tf",
        '    protocol            = "TCP"\n',
        '    protocol            = "TCP"\n    matcher = "0-99"\n',
    )
    ev = evaluator(seeded, enable_nlb=True, max_connection_age_seconds=30)
    assert tcp_target_group_matchers(seeded, ev) == [
        "aws_lb_target_group.agent: matcher on a TCP target group"
    ]


@pytest.mark.parametrize(
    ("filename", "old", "new"),
    [
        ("iam.tf", '["ecs:ListTasks"]', '["ecs:List*"]'),
        ("iam.tf", '"ssmmessages:OpenDataChannel",', '"ssmmessages:*",'),
        ("iam.tf", 'Action   = ["ecr:GetAuthorizationToken"]', 'Action   = "*"'),
        ("iam.tf", 'Action    = "sts:AssumeRole"', 'Action    = "sts:*"'),
    ],
)
def test_wildcard_guard_catches_wildcard_actions(
    mutable_module: Callable[[str, str, str], Module], filename: str, old: str, new: str
) -> None:
    mutated = mutable_module(filename, old, new)
    found = wildcard_actions(mutated, Evaluator(mutated, ALL_FEATURES))
    assert found, f"{new} was not caught"


def test_the_evaluator_refuses_what_it_cannot_read(module: Module) -> None:
    with pytest.raises(HclError, match="no such variable"):
        Evaluator(module, {"not_a_variable": 1})
    with pytest.raises(HclError, match="has no default"):
        Evaluator(module).var("vpc_id")


# --- docs ---------------------------------------------------------------------------


def test_deploy_doc_states_the_timings_and_the_choices() -> None:
    text = (ROOT / "docs" / "deploy-aws.md").read_text()
    for needle in (
        "terraform apply",
        "TTL",
        "stopTimeout",
        "GRPC_DRAIN_SECONDS",
        "GRPC_GRACE_SECONDS",
        "GRPC_MAX_CONNECTION_AGE_SECONDS",
        "deregistration",
        "350",
        "Service Connect",
        "2026-09-30",
        "Proven offline",
        "needs a real account",
        "autoscaling",
        "ConversationsInFlight",
    ):
        assert needle in text, needle
    assert str(config.DEFAULT_CLIENT_KEEPALIVE_SECONDS).split(".")[0] + " s" in text


# --- Fargate sizes, scaling ------------------------------------------------------------

# AWS's Fargate task size table (Linux): CPU units -> allowed memory (MiB).
FARGATE_SIZES = {
    256: [512, 1024, 2048],
    512: list(range(1024, 4096 + 1, 1024)),
    1024: list(range(2048, 8192 + 1, 1024)),
    2048: list(range(4096, 16384 + 1, 1024)),
    4096: list(range(8192, 30720 + 1, 1024)),
    8192: list(range(16384, 61440 + 1, 4096)),
    16384: list(range(32768, 122880 + 1, 8192)),
}


def test_every_fargate_size_is_accepted_and_nothing_else(module: Module) -> None:
    for cpu, memories in FARGATE_SIZES.items():
        for memory in sorted({*memories, 512, 1536, 3072, 4096, 8192, 30720, 32768, 61440, 65536}):
            errors = [
                e
                for e in evaluator(module, agent_cpu=cpu, agent_memory=memory).validation_errors()
                if e.startswith("agent_memory:")
            ]
            assert (errors == []) == (memory in memories), (cpu, memory, errors)


def test_the_agent_scales_on_cpu_and_its_own_in_flight_metric(module: Module) -> None:
    ev = evaluator(module)
    env = env_of(container(ev, "agent"))
    policy = module.resources[("aws_appautoscaling_policy", "agent_conversations")]
    config = policy.block("target_tracking_scaling_policy_configuration")
    assert config is not None
    spec = config.body.block("customized_metric_specification")
    assert spec is not None
    assert ev.eval(spec.body.attrs["metric_name"]) == "ConversationsInFlight"
    assert ev.eval(spec.body.attrs["namespace"]) == env["AGENT_METRICS_NAMESPACE"]
    dims = {
        ev.eval(d.body.attrs["name"]): ev.eval(d.body.attrs["value"])
        for d in spec.body.all("dimensions")
    }
    # The agent publishes under exactly the dimensions the policy reads.
    from ecsgrpc_apps.workflow.emf import METRIC_NAME, parse_dimensions

    assert parse_dimensions(env["AGENT_METRICS_DIMENSIONS"]) == dims
    assert METRIC_NAME == ev.local("agent_metric_name")
    # null turns the load policy and the agent's metric off together.
    off = evaluator(module, agent_conversations_per_task_target=None)
    assert "AGENT_METRICS_NAMESPACE" not in env_of(container(off, "agent"))
    # Scale-in never outpaces the drain: cooldown > stopTimeout (+ NLB delay).
    assert ev.var("scale_in_cooldown_seconds") > ev.var("stop_timeout_seconds")
    nlb = evaluator(
        module, enable_nlb=True, max_connection_age_seconds=30, scale_in_cooldown_seconds=80
    )
    assert any(e.startswith("scale_in_cooldown_seconds:") for e in nlb.validation_errors())


def test_alb_request_scaling_and_the_5xx_alarm_use_the_albs_labels(module: Module) -> None:
    ev = evaluator(
        module,
        gateway_target_group_arn="arn:aws:elasticloadbalancing:eu-west-1:111122223333:targetgroup/gw/0123456789abcdef",
        gateway_alb_arn="arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/edge/fedcba9876543210",
    )
    assert ev.local("gateway_request_policy") is True
    assert f"{ev.local('gateway_alb_suffix')}/{ev.local('gateway_tg_suffix')}" == (
        "app/edge/fedcba9876543210/targetgroup/gw/0123456789abcdef"
    )
    assert ev.local("gateway_alarm_names") == [
        "workflow-gateway-deployment-cpu",
        "workflow-gateway-deployment-5xx",
    ]
    assert ev.validation_errors() == []
    assert evaluator(module).local("gateway_request_policy") is False
