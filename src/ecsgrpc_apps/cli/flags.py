"""Flags of the application commands that stand for settings.

Each such flag's help shows its environment variable and default, like
``[env GRPC_PORT, default 50051]``; its value goes to the settings loader as
typed, so an error names the flag (``--port='99999': must be <= 65535``)
while a bad environment value names the variable.
"""

from __future__ import annotations

import argparse
import dataclasses
import socket
from collections.abc import Mapping
from typing import Any

from ecsgrpc.envreader import env_names
from ecsgrpc.errors import BindError

__all__ = ["SettingFlags", "check_free"]


def _pydantic_field(cls: type, field: str) -> tuple[str, Any]:
    config: Mapping[str, Any] = getattr(cls, "model_config", {})
    default = cls.model_fields[field].default  # type: ignore[attr-defined]
    return f"{config.get('env_prefix', '')}{field}".upper(), default


def _env_and_default(cls: type, field: str) -> tuple[str, Any]:
    if dataclasses.is_dataclass(cls):
        default = next(f.default for f in dataclasses.fields(cls) if f.name == field)
        return env_names(cls)[field], default
    return _pydantic_field(cls, field)


class SettingFlags:
    """Flags bound to settings fields; :meth:`values` gives the loader's arguments."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._parser = parser
        self._fields: dict[str, tuple[type, str, str]] = {}  # dest -> (cls, field, flag)

    def add(self, flag: str, cls: type, field: str, text: str, *, boolean: bool = False) -> None:
        env, default = _env_and_default(cls, field)
        shown = "unset" if default is None else str(default).lower() if boolean else default
        help_text = f"{text} [env {env}, default {shown}]"
        dest = f"{cls.__name__}.{field}"
        if boolean:
            self._parser.add_argument(
                flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            metavar = (
                "SECONDS"
                if field.endswith("seconds")
                else flag.lstrip("-").upper().replace("-", "_")
            )
            self._parser.add_argument(
                flag, dest=dest, default=None, help=help_text, metavar=metavar
            )
        self._fields[dest] = (cls, field, flag)

    def values(self, args: argparse.Namespace, cls: type) -> tuple[dict[str, Any], dict[str, str]]:
        """(overrides, given_as) for ``cls``: the flags the user typed, and their names."""
        overrides: dict[str, Any] = {}
        given_as: dict[str, str] = {}
        for dest, (owner, field, flag) in self._fields.items():
            value = getattr(args, dest, None)
            if owner is cls and value is not None:
                overrides[field] = value if not isinstance(value, bool) else str(value).lower()
                given_as[field] = flag
        return overrides, given_as


def check_free(host: str, port: int) -> None:
    """BindError (one line, exit 1) when ``host:port`` cannot be bound.

    Checked before the server starts, so the user sees one line from us
    rather than the server library's own log lines. (A port taken between
    this check and the bind still fails, in the server's words.)
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise BindError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
