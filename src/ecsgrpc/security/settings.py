"""Client security settings from the environment (prefix ``WORKFLOW_SERVICE_``).

| variable | meaning |
| --- | --- |
| ``WORKFLOW_SERVICE_TLS`` | ``true``: TLS with grpc's default roots (implied by any TLS file) |
| ``WORKFLOW_SERVICE_TLS_CA`` | PEM bundle of the CA(s) that sign the agents' certificates |
| ``WORKFLOW_SERVICE_TLS_CERT`` / ``_KEY`` | this client's certificate and key (mTLS) |
| ``WORKFLOW_SERVICE_TLS_SERVER_NAME`` | name to verify in agent certificates (IP endpoints) |
| ``WORKFLOW_SERVICE_AUTH_TOKEN`` / ``_FILE`` | bearer token sent on every call |

Empty variables count as unset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ecsgrpc.envreader import Secret, load, setting, validate
from ecsgrpc.security.client import ClientSecurity
from ecsgrpc.security.client_tls import ClientTls
from ecsgrpc.security.tokens import token_from

__all__ = ["ClientSecuritySettings", "client_security_from_env"]

_PREFIX = "WORKFLOW_SERVICE_"


@dataclass(frozen=True)
class ClientSecuritySettings:
    """TLS and token settings of a client (see the module table)."""

    ENV_PREFIX: ClassVar[str] = _PREFIX

    tls: bool = setting(False, kind="bool", help="Use TLS even without a CA or certificate.")
    tls_ca: Path | None = setting(None, kind="path", help="CA bundle to trust (PEM).")
    tls_cert: Path | None = setting(None, kind="path", help="Client certificate for mTLS (PEM).")
    tls_key: Path | None = setting(None, kind="path", help="Client private key for mTLS (PEM).")
    tls_server_name: str | None = setting(
        None, kind="str", min_length=1, max_length=253, help="Server name override."
    )
    auth_token: Secret | None = setting(None, kind="secret", help="Bearer token sent on calls.")
    auth_token_file: Path | None = setting(None, kind="path", help="File holding the token.")

    def __post_init__(self) -> None:
        validate(self)

    def to_security(self) -> ClientSecurity:
        """The :class:`ClientSecurity` these settings describe (token checked,
        files not read yet). ConfigError names the variable."""
        uses_tls = self.tls or any(
            v is not None for v in (self.tls_ca, self.tls_cert, self.tls_key, self.tls_server_name)
        )
        tls = (
            ClientTls(
                ca=self.tls_ca,
                cert=self.tls_cert,
                key=self.tls_key,
                server_name=self.tls_server_name,
            )
            if uses_tls
            else None
        )
        token = token_from(
            None if self.auth_token is None else self.auth_token.get_secret_value(),
            self.auth_token_file,
            value_setting=f"{_PREFIX}AUTH_TOKEN",
            file_setting=f"{_PREFIX}AUTH_TOKEN_FILE",
        )
        return ClientSecurity(tls=tls, token=token)


def client_security_from_env() -> ClientSecurity:
    """Client security from the environment. ConfigError names a bad variable."""
    return load(ClientSecuritySettings).to_security()
