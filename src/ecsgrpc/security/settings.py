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

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ecsgrpc.config import load
from ecsgrpc.security.client import ClientSecurity
from ecsgrpc.security.client_tls import ClientTls
from ecsgrpc.security.tokens import token_from

__all__ = ["ClientSecuritySettings", "client_security_from_env"]

_PREFIX = "WORKFLOW_SERVICE_"


class ClientSecuritySettings(BaseSettings):
    """TLS and token settings of a Workflow Agent client (see the module table)."""

    model_config = SettingsConfigDict(
        env_prefix=_PREFIX, extra="ignore", frozen=True, env_ignore_empty=True
    )

    tls: bool = Field(False, description="Use TLS even without a CA or client certificate.")
    tls_ca: Path | None = Field(None, description="CA bundle to trust (PEM).")
    tls_cert: Path | None = Field(None, description="Client certificate for mTLS (PEM).")
    tls_key: Path | None = Field(None, description="Client private key for mTLS (PEM).")
    tls_server_name: str | None = Field(
        None, min_length=1, max_length=253, description="Server name override."
    )
    auth_token: SecretStr | None = Field(None, description="Bearer token sent on every call.")
    auth_token_file: Path | None = Field(None, description="File holding the bearer token.")

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
