"""Client security: TLS/mTLS from files (reloaded on change), a bearer token
sent on every call, and hints for TLS mismatches; the PEM and token readers
are shared with the server side (:mod:`ecsgrpc.server`). See ``docs/security.md``.

Names load on first use (PEP 562): a channel without security never reads them.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecsgrpc.security.client import ClientSecurity
    from ecsgrpc.security.client_tls import ClientTls
    from ecsgrpc.security.diagnose import explain_connect_error
    from ecsgrpc.security.tokens import BearerToken, check_token

_EXPORTS = {
    "ClientSecurity": "ecsgrpc.security.client",
    "ClientTls": "ecsgrpc.security.client_tls",
    "explain_connect_error": "ecsgrpc.security.diagnose",
    "BearerToken": "ecsgrpc.security.tokens",
    "check_token": "ecsgrpc.security.tokens",
}

__all__ = ["BearerToken", "ClientSecurity", "ClientTls", "check_token", "explain_connect_error"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ecsgrpc.security' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
