"""The server side, together: :func:`serve` and :class:`Server` (``serve.py``),
the lifecycle's one transition table (``lifecycle.py``), interceptors (in-flight
tracking, bearer tokens, the deadline cap, request decoding), server TLS with
certificate reloading (``tls.py``), and the health probe CLI's engine
(``probe.py``).

Names load on first use (PEP 562) so ``ecsgrpc probe`` does not import grpc's
aio server stack.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecsgrpc.server.lifecycle import ServerState, can_transition
    from ecsgrpc.server.server import Server, ServiceSpec, serve, server_options

_EXPORTS = {
    "Server": "ecsgrpc.server.server",
    "ServiceSpec": "ecsgrpc.server.server",
    "serve": "ecsgrpc.server.server",
    "server_options": "ecsgrpc.server.server",
    "ServerState": "ecsgrpc.server.lifecycle",
    "can_transition": "ecsgrpc.server.lifecycle",
}

__all__ = ["Server", "ServerState", "ServiceSpec", "can_transition", "serve", "server_options"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ecsgrpc.server' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
