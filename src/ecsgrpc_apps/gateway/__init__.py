"""The API Gateway: HTTP (JSON and Server-Sent Events) in front of the Workflow Agents.

``create_app(client, settings)`` builds the FastAPI app over a
:class:`~ecsgrpc_apps.workflow.client.WorkflowClient`; ``run_gateway(settings)``
serves it with uvicorn and drains on SIGTERM (``ecsgrpc gateway``).
"""

from __future__ import annotations

from ecsgrpc_apps.gateway.app import create_app
from ecsgrpc_apps.gateway.lifecycle import GatewayServer, GatewayState, Lifecycle
from ecsgrpc_apps.gateway.runner import run_gateway, uvicorn_config
from ecsgrpc_apps.gateway.settings import GatewaySettings

__all__ = [
    "GatewayServer",
    "GatewaySettings",
    "GatewayState",
    "Lifecycle",
    "create_app",
    "run_gateway",
    "uvicorn_config",
]
