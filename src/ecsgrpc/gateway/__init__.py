"""The API Gateway: HTTP (JSON and Server-Sent Events) in front of the Workflow Agents.

``create_app(client, settings)`` builds the FastAPI app over a
:class:`~ecsgrpc.workflow.client.WorkflowClient`; ``run_gateway(settings)``
serves it with uvicorn and drains on SIGTERM (``ecsgrpc gateway``).
"""

from __future__ import annotations

from ecsgrpc.gateway.app import create_app
from ecsgrpc.gateway.lifecycle import GatewayServer, GatewayState, Lifecycle
from ecsgrpc.gateway.runner import run_gateway, uvicorn_config
from ecsgrpc.gateway.settings import GatewaySettings

__all__ = [
    "GatewayServer",
    "GatewaySettings",
    "GatewayState",
    "Lifecycle",
    "create_app",
    "run_gateway",
    "uvicorn_config",
]
