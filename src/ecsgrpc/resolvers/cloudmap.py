"""``cloudmap://NAMESPACE/SERVICE?...``: Cloud Map's ``DiscoverInstances`` API.

Each poll asks for up to 1,000 instances (Cloud Map's per-service maximum)
with the target's ``health`` filter (default ``HEALTHY_OR_ELSE_ALL``, see
:mod:`ecsgrpc.targets` for why) and ``attr.KEY=VALUE`` filters as
``QueryParameters``. Each instance becomes an endpoint:

* host: ``AWS_INSTANCE_IPV4``, else ``AWS_INSTANCE_IPV6``; neither (or not an
  IP address) skips the instance (reasons ``no_ip``/``bad_ip``);
* port: ``AWS_INSTANCE_PORT``, else the target's ``port``; neither, or a bad
  or out-of-range value, skips it (``no_port``/``bad_port``);
* attributes: every raw Cloud Map attribute, plus the well-known keys
  ``instance_id``, ``availability_zone`` (from ``AVAILABILITY_ZONE``),
  ``health`` (the instance's ``HealthStatus``) and ``weight`` (from a custom
  ``weight`` attribute, when present).

Polling, not DNS: the API answers changes as soon as ECS registers or
deregisters a task, with zones and health that DNS cannot carry. moto's
``InstancesRevision`` is only a count, so it is never trusted to skip a refresh.
"""

from __future__ import annotations

import functools
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
from ecsgrpc.targets import CloudMapSpec

__all__ = ["MAX_INSTANCES", "CloudMapResolver", "canonical_ip", "endpoints_from_instances"]

MAX_INSTANCES = 1000
IPV4 = "AWS_INSTANCE_IPV4"
IPV6 = "AWS_INSTANCE_IPV6"
PORT = "AWS_INSTANCE_PORT"
ZONE = "AVAILABILITY_ZONE"


class CloudMapResolver(AwsApiResolver):
    """Cloud Map API resolver for a :class:`~ecsgrpc.targets.CloudMapSpec`."""

    def __init__(
        self,
        spec: CloudMapSpec,
        *,
        options: ResolverOptions | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        target = spec.target or f"cloudmap://{spec.namespace}/{spec.service}"
        super().__init__(
            "cloudmap", "servicediscovery", target, spec.poll, options=options, registry=registry
        )
        self._spec = spec

    async def _fetch(self) -> EndpointSet:
        params: dict[str, Any] = {
            "NamespaceName": self._spec.namespace,
            "ServiceName": self._spec.service,
            "HealthStatus": self._spec.health,
            "MaxResults": MAX_INSTANCES,
        }
        if self._spec.attributes:
            params["QueryParameters"] = dict(self._spec.attributes)
        answer = await self._client.call("discover_instances", **params)
        instances = answer.get("Instances") or []
        endpoints = endpoints_from_instances(
            instances, default_port=self._spec.port, skip=self._skip
        )
        return EndpointSet.of(endpoints, source=self.name, ttl=self._poll_interval())


def endpoints_from_instances(
    instances: Iterable[Mapping[str, Any]], *, default_port: int | None, skip: Skip
) -> list[Endpoint]:
    """Endpoints of a ``DiscoverInstances`` answer; malformed instances go to ``skip``.

    Pure and total: any JSON-shaped input gives a list, never an exception.
    """
    endpoints: list[Endpoint] = []
    for instance in instances:
        endpoint = _endpoint(instance, default_port, skip)
        if endpoint is not None:
            endpoints.append(endpoint)
    return dedupe(endpoints, skip)


def _endpoint(instance: Any, default_port: int | None, skip: Skip) -> Endpoint | None:
    if not isinstance(instance, Mapping):
        skip("malformed", repr(instance)[:100])
        return None
    instance_id = str(instance.get("InstanceId", "?"))
    raw = instance.get("Attributes")
    attrs = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}
    # One reason per skipped instance: the host is checked first.
    host = _host(instance_id, attrs, skip)
    if host is None:
        return None
    port = _port(instance_id, attrs, default_port, skip)
    if port is None:
        return None
    attrs[ATTR_INSTANCE_ID] = instance_id
    if ZONE in attrs:
        attrs[ATTR_AVAILABILITY_ZONE] = attrs[ZONE]
    if "HealthStatus" in instance:
        attrs[ATTR_HEALTH] = str(instance["HealthStatus"])
    return Endpoint(host, port, attrs)


def _host(instance_id: str, attrs: Mapping[str, str], skip: Skip) -> str | None:
    text = attrs.get(IPV4) or attrs.get(IPV6)
    if not text:
        skip("no_ip", f"instance {instance_id} has no {IPV4} or {IPV6}")
        return None
    host = canonical_ip(text)
    if host is None:
        skip("bad_ip", f"instance {instance_id}: {text[:100]!r} is not an IP address")
    return host


@functools.lru_cache(maxsize=4096)
def canonical_ip(text: str) -> str | None:
    """``text`` as a canonical IP address string, or None. Cached: every poll sees
    the same addresses again, and parsing them is most of a snapshot's cost."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def _port(
    instance_id: str, attrs: Mapping[str, str], default_port: int | None, skip: Skip
) -> int | None:
    text = attrs.get(PORT)
    if text is None:
        if default_port is None:
            skip("no_port", f"instance {instance_id} has no {PORT} and the target no ?port=")
        return default_port
    value = text.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 5 and 1 <= int(value) <= 65535):
        skip("bad_port", f"instance {instance_id}: {PORT}={text[:100]!r}")
        return None
    return int(value)
