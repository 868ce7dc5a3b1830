"""``ecs://CLUSTER/SERVICE?port=N``: the ECS API's RUNNING tasks of a service.

``ListTasks`` (``serviceName``, ``desiredStatus=RUNNING``, paginated), then
``DescribeTasks`` in batches of 100. A task becomes an endpoint when its
``lastStatus`` is ``RUNNING``: host from its ENI attachment's
``privateIPv4Address`` (awsvpc networking, as on Fargate), port from the
target. Attributes: ``instance_id`` (the task id), ``availability_zone``,
``health`` (the task's ``healthStatus``), ``task_arn``, ``task_definition``.

A RUNNING task without an ENI address is skipped and counted (``no_ip``).
Tasks still starting or already stopping are left out quietly: they are not
malformed, just not serving. Tasks whose ``group`` names another service are
left out too (ECS filters by service itself; some emulators do not).
This route needs ``ecs:ListTasks`` and ``ecs:DescribeTasks`` and shares ECS's
API rate limit, hence the longer default poll (10 s).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from ecsgrpc.endpoints import (
    ATTR_AVAILABILITY_ZONE,
    ATTR_HEALTH,
    ATTR_INSTANCE_ID,
    Endpoint,
    EndpointSet,
)
from ecsgrpc.resolvers.aws import AwsApiResolver
from ecsgrpc.resolvers.options import ResolverOptions
from ecsgrpc.resolvers.polling import Skip, dedupe
from ecsgrpc.targets import EcsSpec

__all__ = ["DESCRIBE_BATCH", "EcsResolver", "endpoints_from_tasks"]

DESCRIBE_BATCH = 100  # DescribeTasks takes at most 100 tasks per call
_LIST_PAGE = 100  # ListTasks' largest page
_MAX_PAGES = 1000  # a runaway nextToken loop stops here


class EcsResolver(AwsApiResolver):
    """ECS API resolver for an :class:`~ecsgrpc.targets.EcsSpec`."""

    def __init__(
        self,
        spec: EcsSpec,
        *,
        options: ResolverOptions | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        target = spec.target or f"ecs://{spec.cluster}/{spec.service}?port={spec.port}"
        super().__init__("ecs", "ecs", target, spec.poll, options=options, registry=registry)
        self._spec = spec

    async def _fetch(self) -> EndpointSet:
        arns = await self._list_task_arns()
        tasks: list[Mapping[str, Any]] = []
        for start in range(0, len(arns), DESCRIBE_BATCH):
            batch = arns[start : start + DESCRIBE_BATCH]
            answer = await self._client.call(
                "describe_tasks", cluster=self._spec.cluster, tasks=batch
            )
            tasks.extend(answer.get("tasks") or [])
        endpoints = endpoints_from_tasks(
            tasks, port=self._spec.port, service=self._spec.service, skip=self._skip
        )
        return EndpointSet.of(endpoints, source=self.name, ttl=self._poll_interval())

    async def _list_task_arns(self) -> list[str]:
        arns: list[str] = []
        params: dict[str, Any] = {
            "cluster": self._spec.cluster,
            "serviceName": self._spec.service,
            "desiredStatus": "RUNNING",
            "maxResults": _LIST_PAGE,
        }
        for _ in range(_MAX_PAGES):
            page = await self._client.call("list_tasks", **params)
            arns.extend(str(a) for a in page.get("taskArns") or [])
            token = page.get("nextToken")
            if not token:
                break
            params["nextToken"] = token
        return list(dict.fromkeys(arns))


def endpoints_from_tasks(
    tasks: Iterable[Mapping[str, Any]], *, port: int, service: str, skip: Skip
) -> list[Endpoint]:
    """Endpoints of ``DescribeTasks`` answers; malformed RUNNING tasks go to ``skip``."""
    group = f"service:{service}"
    endpoints: list[Endpoint] = []
    for task in tasks:
        if not isinstance(task, Mapping):
            skip("malformed", repr(task)[:100])
            continue
        if task.get("lastStatus") != "RUNNING" or task.get("group", group) != group:
            continue
        endpoint = _endpoint(task, port, skip)
        if endpoint is not None:
            endpoints.append(endpoint)
    return dedupe(endpoints, skip)


def _endpoint(task: Mapping[str, Any], port: int, skip: Skip) -> Endpoint | None:
    arn = str(task.get("taskArn", "?"))
    host = _eni_address(task)
    if host is None:
        skip("no_ip", f"task {arn} has no ENI privateIPv4Address")
        return None
    attrs = {
        ATTR_INSTANCE_ID: arn.rsplit("/", 1)[-1],
        "task_arn": arn,
        "task_definition": str(task.get("taskDefinitionArn", "")),
    }
    if task.get("availabilityZone"):
        attrs[ATTR_AVAILABILITY_ZONE] = str(task["availabilityZone"])
    if task.get("healthStatus"):
        attrs[ATTR_HEALTH] = str(task["healthStatus"])
    return Endpoint(host, port, attrs)


def _eni_address(task: Mapping[str, Any]) -> str | None:
    for attachment in task.get("attachments") or ():
        if not isinstance(attachment, Mapping):
            continue
        if attachment.get("type") != "ElasticNetworkInterface":
            continue
        for detail in attachment.get("details") or ():
            if isinstance(detail, Mapping) and detail.get("name") == "privateIPv4Address":
                try:
                    return str(ipaddress.IPv4Address(str(detail.get("value", "")).strip()))
                except ValueError:
                    return None
    return None
