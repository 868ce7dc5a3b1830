"""An embedded AWS emulator (moto's server) for Cloud Map and ECS, on 127.0.0.1.

The server runs in a thread of this process. Its state lives in moto's
in-process backends, so :meth:`AwsEmulator.stop` then :meth:`start` (same
port) models an outage of the API that comes back with its data, exactly what
a discovery outage looks like from a client.

Provisioning helpers mirror what ``infra/terraform`` creates: a private DNS
namespace, a Cloud Map service with A records (TTL 10, MULTIVALUE) and a
custom health config, and instances registered with the attributes ECS writes.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

__all__ = ["AwsEmulator", "CloudMapService"]

REGION = "us-east-1"
# Fixed fake credentials: the emulator accepts any, and they are not secrets.
_FAKE_KEY = "testing"


@dataclass(frozen=True, slots=True)
class CloudMapService:
    namespace: str
    namespace_id: str
    service: str
    service_id: str


class AwsEmulator:
    """moto's server on ``127.0.0.1`` (a free port unless one is given).

    Not thread-safe; the provisioning helpers are blocking (boto3) and meant for
    setup code: call them with ``asyncio.to_thread`` from an event loop.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._server: Any = None
        self._started = False
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

    @property
    def endpoint_url(self) -> str:
        if not self._port:
            raise RuntimeError("emulator not started")
        return f"http://{self._host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Start empty (or restart on the same port, keeping all state).

        moto keeps its resources per process, not per server: an emulator's
        first start forgets what an earlier emulator in this process created,
        so a new emulator never serves another's namespaces and instances.
        """
        from moto.server import ThreadedMotoServer

        if self._server is not None:
            return
        first = not self._started
        server = ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
        server.start()
        self._port = int(server.get_host_and_port()[1])
        self._server = server
        self._started = True
        if first:
            self.reset()

    def stop(self) -> None:
        """Stop serving; state is kept for a later :meth:`start`."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """Environment for a process (or aiobotocore session) that talks to the emulator."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": _FAKE_KEY,
            "AWS_SECRET_ACCESS_KEY": _FAKE_KEY,
        }

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` bound to the emulator."""
        import boto3

        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=_FAKE_KEY,
            aws_secret_access_key=_FAKE_KEY,
        )

    def _moto_api(self, path: str, body: Mapping[str, Any] | None = None) -> None:
        data = json.dumps(body or {}).encode()
        request = urllib.request.Request(  # noqa: S310 (loopback emulator URL)
            f"{self.endpoint_url}/moto-api/{path}", data=data, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        self._moto_api("reset")

    def ecs_tasks_stay_running(self) -> None:
        """Make moto keep ECS tasks RUNNING instead of advancing them by itself."""
        self._moto_api(
            "state-manager/set-transition",
            {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10**9}},
        )

    # Cloud Map, as the Terraform module provisions it.
    def provision_cloudmap(
        self, namespace: str = "workflow.local", service: str = "workflow-agent", *, ttl: int = 10
    ) -> CloudMapService:
        """Create (or find) the private DNS namespace and the service; idempotent."""
        sd = self.client("servicediscovery")
        namespace_id = self._find_namespace(sd, namespace)
        if namespace_id is None:
            sd.create_private_dns_namespace(Name=namespace, Vpc="vpc-local")
            namespace_id = self._find_namespace(sd, namespace)
        assert namespace_id is not None
        for summary in sd.list_services()["Services"]:
            if summary["Name"] == service and summary.get("NamespaceId") == namespace_id:
                return CloudMapService(namespace, namespace_id, service, summary["Id"])
        created = sd.create_service(
            Name=service,
            NamespaceId=namespace_id,
            DnsConfig={"RoutingPolicy": "MULTIVALUE", "DnsRecords": [{"Type": "A", "TTL": ttl}]},
            HealthCheckCustomConfig={"FailureThreshold": 1},
        )["Service"]
        return CloudMapService(namespace, namespace_id, service, created["Id"])

    @staticmethod
    def _find_namespace(sd: Any, name: str) -> str | None:
        for ns in sd.list_namespaces()["Namespaces"]:
            if ns["Name"] == name:
                return str(ns["Id"])
        return None

    def register_instance(
        self, service: CloudMapService, instance_id: str, attributes: Mapping[str, str]
    ) -> None:
        self.client("servicediscovery").register_instance(
            ServiceId=service.service_id, InstanceId=instance_id, Attributes=dict(attributes)
        )

    def deregister_instance(self, service: CloudMapService, instance_id: str) -> None:
        self.client("servicediscovery").deregister_instance(
            ServiceId=service.service_id, InstanceId=instance_id
        )

    def set_instance_health(
        self, service: CloudMapService, instance_id: str, *, healthy: bool
    ) -> None:
        self.client("servicediscovery").update_instance_custom_health_status(
            ServiceId=service.service_id,
            InstanceId=instance_id,
            Status="HEALTHY" if healthy else "UNHEALTHY",
        )
