"""Proxyless xDS: a control plane for gRPC clients in any language, and its clients.

``ecsgrpc xds serve`` polls each service's discovery target once for the whole
fleet and serves the resources gRPC's own xDS clients ask for (``xds:///NAME``);
``ecsgrpc xds bootstrap`` / :func:`bootstrap_json` give a client its bootstrap;
:func:`xds_channel` opens gRPC's own ``xds:`` channel. The control plane needs
the ``xds`` extra (the xDS messages); the client side needs nothing more than
grpcio. See docs/xds.md.
"""

from __future__ import annotations

from typing import Any

from ecsgrpc.xds.bootstrap import bootstrap_config, bootstrap_json, ecs_task_info
from ecsgrpc.xds.channel import XdsChannel, ensure_bootstrap, xds_channel
from ecsgrpc.xds.config import OutlierPolicy, RetryPolicy, XdsService

__all__ = [
    "ControlPlane",
    "OutlierPolicy",
    "RetryPolicy",
    "XdsChannel",
    "XdsService",
    "bootstrap_config",
    "bootstrap_json",
    "ecs_task_info",
    "ensure_bootstrap",
    "run_control_plane",
    "xds_channel",
]


def __getattr__(name: str) -> Any:
    # The control plane imports the xDS messages (the 'xds' extra): only on use.
    if name in ("ControlPlane", "run_control_plane"):
        from ecsgrpc.xds import server

        return getattr(server, name)
    raise AttributeError(f"module 'ecsgrpc.xds' has no attribute {name!r}")
