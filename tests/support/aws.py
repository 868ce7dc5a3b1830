"""The AWS emulator for tests: one moto server per session, reset between tests.

The ``aws`` fixture (see :func:`aws_fixture`) gives a started
:class:`~ecsgrpc_apps.local.emulator.AwsEmulator` with no resources and points the
SDK's environment at it (``AWS_ENDPOINT_URL``, region, fake keys, no shared
config files, no instance metadata lookups), so aiobotocore clients created
by the code under test talk to it and to nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ecsgrpc_apps.local.emulator import AwsEmulator

_SDK_ISOLATION = {
    # Never read the developer's ~/.aws, never ask EC2 instance metadata.
    "AWS_CONFIG_FILE": "/nonexistent/ecsgrpc-tests/config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/ecsgrpc-tests/credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_SDK_VARIABLES_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_SERVICEDISCOVERY",
    "AWS_ENDPOINT_URL_ECS",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


@pytest.fixture(scope="session")
def aws_emulator() -> Iterator[AwsEmulator]:
    emulator = AwsEmulator()
    emulator.start()
    yield emulator
    emulator.stop()


def point_sdk_at(emulator: AwsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Environment for aiobotocore sessions created in this test: the emulator only."""
    for name in _SDK_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**emulator.env(), **_SDK_ISOLATION}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def aws(aws_emulator: AwsEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsEmulator]:
    """A started, empty emulator with the SDK environment pointing at it."""
    aws_emulator.start()  # a previous test may have stopped it
    aws_emulator.reset()
    point_sdk_at(aws_emulator, monkeypatch)
    yield aws_emulator
    aws_emulator.start()
    aws_emulator.reset()  # what this test made is not the next one's


@dataclass(frozen=True)
class EcsService:
    """What :func:`provision_ecs` created: enough to run tasks for a service."""

    cluster: str
    service: str
    subnet: str
    security_group: str
    task_definition: str


def provision_ecs(
    emulator: AwsEmulator, cluster: str = "workflow", service: str = "agent"
) -> EcsService:
    """A VPC (DNS hostnames on), subnet, security group, cluster, awsvpc task definition
    and service, as moto needs them for ``run_task`` to give tasks ENIs."""
    ec2, ecs = emulator.client("ec2"), emulator.client("ecs")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")
    subnet_id = subnet["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName=f"{service}-sg", Description="agents", VpcId=vpc)
    ecs.create_cluster(clusterName=cluster)
    ecs.register_task_definition(
        family=service,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": service,
                "image": "agent",
                "memory": 512,
                "portMappings": [{"containerPort": 50051}],
            }
        ],
    )
    spec = EcsService(cluster, service, subnet_id, sg["GroupId"], service)
    ecs.create_service(
        cluster=cluster,
        serviceName=service,
        taskDefinition=service,
        desiredCount=0,
        launchType="FARGATE",
        networkConfiguration=_network(spec),
    )
    emulator.ecs_tasks_stay_running()
    return spec


def _network(spec: EcsService) -> dict[str, object]:
    return {
        "awsvpcConfiguration": {"subnets": [spec.subnet], "securityGroups": [spec.security_group]}
    }


def run_tasks(
    emulator: AwsEmulator, spec: EcsService, count: int, *, service: str | None = None
) -> list[dict[str, object]]:
    """Start ``count`` RUNNING tasks tied to the service (moto's create_service starts none)."""
    tasks = emulator.client("ecs").run_task(
        cluster=spec.cluster,
        taskDefinition=spec.task_definition,
        count=count,
        launchType="FARGATE",
        group=f"service:{service or spec.service}",
        networkConfiguration=_network(spec),
    )["tasks"]
    return list(tasks)


def stop_task(emulator: AwsEmulator, spec: EcsService, task_arn: str) -> None:
    emulator.client("ecs").stop_task(cluster=spec.cluster, task=task_arn, reason="test")
