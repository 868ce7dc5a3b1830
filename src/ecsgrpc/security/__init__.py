"""Security for ecsgrpc servers and clients: TLS/mTLS from files (reloaded on
change), bearer-token caller authentication, a per-call deadline cap, and
error hints for TLS mismatches. See ``docs/security.md``."""

from ecsgrpc.security.auth import AuthInterceptor, TokenAuthInterceptor
from ecsgrpc.security.client import ClientSecurity
from ecsgrpc.security.client_tls import ClientTls
from ecsgrpc.security.deadline import DeadlineCapInterceptor
from ecsgrpc.security.diagnose import explain_connect_error
from ecsgrpc.security.server_tls import CertificateReloader, ServerTlsFiles
from ecsgrpc.security.tokens import BearerToken, check_token

__all__ = [
    "AuthInterceptor",
    "BearerToken",
    "CertificateReloader",
    "ClientSecurity",
    "ClientTls",
    "DeadlineCapInterceptor",
    "ServerTlsFiles",
    "TokenAuthInterceptor",
    "check_token",
    "explain_connect_error",
]
