"""Shared bearer tokens: where they come from and what a valid one looks like.

A token is given as a value (``GRPC_AUTH_TOKEN``, ``WORKFLOW_SERVICE_AUTH_TOKEN``)
or a file (``..._AUTH_TOKEN_FILE``), since ECS injects secrets as environment
variables and sidecars write them as files. It is sent as ``authorization:
Bearer <token>``, so it must be a valid HTTP header value: 16 to 4096 visible
ASCII characters, no spaces. A token never appears in an error or a log: the
errors here name the setting and say what is wrong, not the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ecsgrpc.errors import ConfigError
from ecsgrpc.security.pem import SettingFile, read_bytes

__all__ = [
    "MAX_TOKEN_CHARS",
    "MIN_TOKEN_CHARS",
    "BearerToken",
    "check_token",
    "token_from",
]

MIN_TOKEN_CHARS = 16
MAX_TOKEN_CHARS = 4096


@dataclass(frozen=True, slots=True)
class BearerToken:
    """A checked token. ``repr``/``str`` never show it; :attr:`secret` does."""

    secret: str

    def header_value(self) -> str:
        return f"Bearer {self.secret}"

    def __repr__(self) -> str:
        return "BearerToken(<redacted>)"

    __str__ = __repr__


def token_problem(token: str) -> str | None:
    """What is wrong with ``token`` (without quoting it), or None if it is fine."""
    if len(token) < MIN_TOKEN_CHARS:
        return f"a token needs at least {MIN_TOKEN_CHARS} characters (got {len(token)})"
    if len(token) > MAX_TOKEN_CHARS:
        return f"a token has at most {MAX_TOKEN_CHARS} characters (got {len(token)})"
    if not all("!" <= c <= "~" for c in token):
        return "a token may only hold visible ASCII characters (no spaces or control characters)"
    return None


def check_token(token: str, *, setting: str) -> BearerToken:
    """``token`` as a :class:`BearerToken`; ConfigError naming ``setting`` if invalid."""
    problem = token_problem(token)
    if problem is not None:
        raise ConfigError(f"{setting}: {problem}")
    return BearerToken(token)


def token_from(
    value: str | None, file: Path | None, *, value_setting: str, file_setting: str
) -> BearerToken | None:
    """The token from a value or a file (one trailing newline stripped), or None.

    Raises ConfigError when both are set, the file cannot be read or the token
    is invalid; the message names the setting, never the token.
    """
    if value is not None and file is not None:
        raise ConfigError(f"{value_setting} and {file_setting} are both set; set only one")
    if file is not None:
        source = SettingFile(file_setting, file)
        raw = read_bytes(source)
        try:
            text = raw.decode("ascii").removesuffix("\n").removesuffix("\r")
        except UnicodeDecodeError:
            raise ConfigError(f"{source}: the token file is not ASCII text") from None
        return check_token(text, setting=str(source))
    if value is not None:
        return check_token(value, setting=value_setting)
    return None
