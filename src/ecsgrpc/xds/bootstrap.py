"""Client bootstrap: what a gRPC client needs to use ``xds:///NAME`` targets.

gRPC reads it from ``GRPC_XDS_BOOTSTRAP_CONFIG`` (the JSON itself) or
``GRPC_XDS_BOOTSTRAP`` (a file path) when it creates its first ``xds:`` channel
(gRFC A27; every official implementation: C-core under grpcio, grpc-go,
grpc-java, grpc-js with ``@grpc/grpc-js-xds``).

* ``xds_servers``: the control plane. Several replicas given as IPv4/IPv6
  ``host:port`` literals become one server URI ``ipv4:a:p,b:q`` (the xDS
  channel connects to one and moves to another when it goes away); a DNS name
  (the replicas' Cloud Map name) does the same through its A records.
  ``channel_creds`` is ``insecure`` or ``tls`` (gRFC A65: CA, and a client
  certificate for mTLS, read from files and re-read when they change).
* ``node``: ``id`` (the ECS task ARN when known), ``cluster`` and
  ``locality.zone``: the client's availability zone, so the control plane
  sends it its own zone's endpoints first. On ECS the zone comes from the task
  metadata endpoint v4 (``$ECS_CONTAINER_METADATA_URI_V4/task``,
  ``AvailabilityZone``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecsgrpc.errors import ConfigError

__all__ = ["EcsTaskInfo", "bootstrap_config", "bootstrap_json", "ecs_task_info", "server_uri"]

METADATA_ENV = "ECS_CONTAINER_METADATA_URI_V4"


@dataclass(frozen=True, slots=True)
class EcsTaskInfo:
    """What the ECS task metadata endpoint v4 says about this task."""

    task_arn: str | None
    zone: str | None
    cluster: str | None


def ecs_task_info(timeout: float = 2.0, env: Mapping[str, str] | None = None) -> EcsTaskInfo | None:
    """Ask the ECS task metadata endpoint (``$ECS_CONTAINER_METADATA_URI_V4/task``).

    None when the variable is unset (not on ECS). Blocking: call it at start-up,
    or through ``asyncio.to_thread``. Raises ConfigError when it is set but does
    not answer with the task's JSON.
    """
    base = (env if env is not None else os.environ).get(METADATA_ENV)
    if not base:
        return None
    url = base.rstrip("/") + "/task"
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{METADATA_ENV}={base!r} is not an http URL")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310 (http checked)
            task = json.loads(reply.read())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"ECS task metadata at {url}: {exc}") from None
    if not isinstance(task, dict):
        raise ConfigError(f"ECS task metadata at {url}: not a JSON object")

    def text(key: str) -> str | None:
        value = task.get(key)
        return str(value) if value else None

    return EcsTaskInfo(text("TaskARN"), text("AvailabilityZone"), text("Cluster"))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _split(server: str) -> tuple[str, int]:
    host, sep, port = server.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"xDS server {server!r}: expected HOST:PORT (e.g. xds.local:18000)")
    return host, int(port)


def server_uri(servers: Sequence[str]) -> list[str]:
    """The ``server_uri`` values for ``servers`` (``HOST:PORT`` each, or full gRPC
    target URIs with a scheme). IP literals of one family are merged into one
    ``ipv4:``/``ipv6:`` URI; names become ``dns:///HOST:PORT``, one each."""
    if not servers:
        raise ConfigError("give at least one xDS server (HOST:PORT)")
    uris: list[str] = []
    v4: list[str] = []
    v6: list[str] = []
    for server in servers:
        if "://" in server or server.startswith(("ipv4:", "ipv6:", "unix:")):
            uris.append(server)
            continue
        host, port = _split(server)
        if _is_ip(host):
            bare = host.strip("[]")
            if ipaddress.ip_address(bare).version == 4:
                v4.append(f"{bare}:{port}")
            else:
                v6.append(f"[{bare}]:{port}")
        else:
            uris.append(f"dns:///{host}:{port}")
    if v6:
        uris.insert(0, "ipv6:" + ",".join(v6))
    if v4:
        uris.insert(0, "ipv4:" + ",".join(v4))
    return uris


def _channel_creds(ca: Path | None, cert: Path | None, key: Path | None) -> list[dict[str, Any]]:
    if ca is None and cert is None and key is None:
        return [{"type": "insecure"}]
    if (cert is None) != (key is None):
        raise ConfigError("a client certificate needs both --tls-cert and --tls-key")
    config: dict[str, Any] = {}
    if ca is not None:
        config["ca_certificate_file"] = str(ca.resolve())
    if cert is not None and key is not None:
        config["certificate_file"] = str(cert.resolve())
        config["private_key_file"] = str(key.resolve())
    for label, path in (("--tls-ca", ca), ("--tls-cert", cert), ("--tls-key", key)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{label} {str(path)!r}: no such file")
    return [{"type": "tls", "config": config}]


def bootstrap_config(
    servers: Sequence[str],
    *,
    zone: str | None = None,
    node_id: str | None = None,
    cluster: str = "",
    tls_ca: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The bootstrap as a dict (see the module docstring). ``node_id`` defaults to
    ``HOSTNAME-PID``; ``zone`` None leaves the locality out (no zone preference)."""
    creds = _channel_creds(tls_ca, tls_cert, tls_key)
    node: dict[str, Any] = {
        "id": node_id or f"{socket.gethostname()}-{os.getpid()}",
        "cluster": cluster,
        # Always present: grpc-js rejects a bootstrap whose node has no locality.
        "locality": {"zone": zone} if zone else {},
    }
    if metadata:
        node["metadata"] = dict(metadata)
    return {
        "xds_servers": [
            {"server_uri": uri, "channel_creds": creds, "server_features": ["xds_v3"]}
            for uri in server_uri(servers)
        ],
        "node": node,
    }


def bootstrap_json(servers: Sequence[str], **kwargs: Any) -> str:
    """:func:`bootstrap_config` as JSON, the value of ``GRPC_XDS_BOOTSTRAP_CONFIG``.

    On ECS (``ECS_CONTAINER_METADATA_URI_V4`` set) the zone and node id default
    to the task's availability zone and ARN::

        os.environ["GRPC_XDS_BOOTSTRAP_CONFIG"] = bootstrap_json(["xds.local:18000"])
        channel = grpc.aio.insecure_channel("xds:///workflow-agent")
    """
    if kwargs.get("zone") is None or kwargs.get("node_id") is None:
        task = ecs_task_info()
        if task is not None:
            kwargs["zone"] = kwargs.get("zone") or task.zone
            kwargs["node_id"] = kwargs.get("node_id") or task.task_arn
    return json.dumps(bootstrap_config(servers, **kwargs), indent=2, sort_keys=True)
