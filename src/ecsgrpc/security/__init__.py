"""Client security: TLS/mTLS from files (reloaded on change), a bearer token
sent on every call, and hints for TLS mismatches; the PEM and token readers
are shared with the server side (:mod:`ecsgrpc.server`). See ``docs/security.md``."""

from ecsgrpc.security.client import ClientSecurity
from ecsgrpc.security.client_tls import ClientTls
from ecsgrpc.security.diagnose import explain_connect_error
from ecsgrpc.security.tokens import BearerToken, check_token

__all__ = [
    "BearerToken",
    "ClientSecurity",
    "ClientTls",
    "check_token",
    "explain_connect_error",
]
