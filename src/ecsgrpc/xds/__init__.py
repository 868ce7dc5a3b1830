"""An xDS control plane for gRPC clients in any language (extra ``xds``).

``ecsgrpc xds serve`` polls each service's discovery target once for the whole
fleet and serves the resources gRPC's own xDS clients ask for (``xds:///NAME``);
``ecsgrpc xds bootstrap`` / :func:`bootstrap_json` give a client its bootstrap.
See docs/xds.md.
"""

from __future__ import annotations

from ecsgrpc.xds.bootstrap import bootstrap_config, bootstrap_json, ecs_task_info
from ecsgrpc.xds.config import OutlierPolicy, RetryPolicy, XdsService
from ecsgrpc.xds.server import ControlPlane, run_control_plane

__all__ = [
    "ControlPlane",
    "OutlierPolicy",
    "RetryPolicy",
    "XdsService",
    "bootstrap_config",
    "bootstrap_json",
    "ecs_task_info",
    "run_control_plane",
]
