"""Loading the applications' pydantic settings with the library's error style.

``load(GatewaySettings, given_as={"port": "--port"}, port="99999")`` raises
:class:`~ecsgrpc.errors.ConfigError` with one ``NAME=VALUE: reason`` item per
problem, naming the flag for values the user typed and the variable for the
environment's, secrets redacted, without pydantic's own wording.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from ecsgrpc.errors import ConfigError

__all__ = ["describe_validation_error", "load"]

_S = TypeVar("_S", bound=BaseSettings)


def load(cls: type[_S], *, given_as: Mapping[str, str] | None = None, **overrides: Any) -> _S:
    """Settings from the environment plus explicit overrides (None ones ignored)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return cls(**given)
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        names = {k: v for k, v in (given_as or {}).items() if k in given}
        raise ConfigError(describe_validation_error(exc, prefix, names)) from None


def describe_validation_error(
    exc: ValidationError, env_prefix: str = "", given_as: Mapping[str, str] | None = None
) -> str:
    """One item per problem: ``GATEWAY_PORT='70000': must be <= 65535``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "value"
        name = (given_as or {}).get(loc) or (f"{env_prefix}{loc}".upper() if env_prefix else loc)
        secret = any(w in loc.lower() for w in ("token", "secret", "password"))
        given = "<redacted>" if secret and not loc.endswith("_file") else repr(err.get("input"))
        parts.append(f"{name}={given}: {_reason(err)}")
    return "invalid settings: " + "; ".join(parts)


def _reason(err: Mapping[str, Any]) -> str:
    """pydantic's message in this project's words (no "Value error, ..." prefixes)."""
    ctx = err.get("ctx") or {}
    kind = str(err.get("type", ""))
    words = {
        "greater_than_equal": ">= {ge}",
        "greater_than": "> {gt}",
        "less_than_equal": "<= {le}",
        "less_than": "< {lt}",
    }
    if kind in words:
        return "must be " + words[kind].format(**ctx)
    if kind in ("int_parsing", "int_from_float"):
        return "not a whole number"
    if kind == "float_parsing":
        return "not a number"
    if kind == "bool_parsing":
        return "not a boolean (true/false, 1/0, yes/no, on/off)"
    return str(err.get("msg", "invalid")).removeprefix("Value error, ")
