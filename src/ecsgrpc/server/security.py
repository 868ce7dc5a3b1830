"""What :class:`ecsgrpc.Server` takes from :class:`ServerSettings` for security:
TLS credentials (reloading), the token interceptor, the deadline cap and the
request decode guard.

Built once at server construction; reading the files there is start-up work
(before anything is served), and every problem is a ConfigError naming the
variable and file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from ecsgrpc.config import ServerSettings
from ecsgrpc.security.tokens import token_from
from ecsgrpc.server.auth import TokenAuthInterceptor
from ecsgrpc.server.deadline import DeadlineCapInterceptor
from ecsgrpc.server.decode import DecodeGuardInterceptor
from ecsgrpc.server.tls import CertificateReloader, server_tls_files

__all__ = ["ServerSecurity", "server_security"]


@dataclass(frozen=True)
class ServerSecurity:
    """The server's loaded security pieces (``repr`` shows no secret)."""

    reloader: CertificateReloader | None
    auth: TokenAuthInterceptor | None
    deadline_cap: DeadlineCapInterceptor
    decode_guard: DecodeGuardInterceptor = field(default_factory=DecodeGuardInterceptor)

    @property
    def mode(self) -> str:
        """``plaintext``, ``tls`` or ``mtls`` (for logs)."""
        if self.reloader is None:
            return "plaintext"
        return "mtls" if self.reloader.files.mutual else "tls"

    def credentials(self) -> grpc.ServerCredentials | None:
        return None if self.reloader is None else self.reloader.credentials()

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """Authentication first (a rejected call is never parsed), then the cap,
        then request decoding (INVALID_ARGUMENT for bytes that do not parse)."""
        found: list[grpc.aio.ServerInterceptor] = []
        if self.auth is not None:
            found.append(self.auth)
        found.extend([self.deadline_cap, self.decode_guard])
        return found


def server_security(settings: ServerSettings) -> ServerSecurity:
    """Load TLS files and the token named by ``settings``.

    Raises ConfigError naming the variable (and file) for a missing pair, an
    unreadable or invalid file, a key that does not match its certificate, or
    an invalid token (never quoting the token).
    """
    files = server_tls_files(settings.tls_cert, settings.tls_key, settings.tls_ca)
    token = token_from(
        None if settings.auth_token is None else settings.auth_token.get_secret_value(),
        settings.auth_token_file,
        value_setting="GRPC_AUTH_TOKEN",
        file_setting="GRPC_AUTH_TOKEN_FILE",
    )
    return ServerSecurity(
        reloader=None if files is None else CertificateReloader(files),
        auth=None if token is None else TokenAuthInterceptor(token),
        deadline_cap=DeadlineCapInterceptor(settings.max_call_seconds),
    )
