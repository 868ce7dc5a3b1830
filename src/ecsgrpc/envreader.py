"""A small reader of settings from the environment (standard library only).

Settings classes are frozen dataclasses whose fields are declared with
:func:`setting`; the class names its variable prefix in ``ENV_PREFIX``::

    @dataclass(frozen=True)
    class ServerSettings:
        ENV_PREFIX: ClassVar[str] = "GRPC_"
        port: int = setting(50051, kind="int", ge=0, le=65535, help="Port to bind.")

* ``ServerSettings(port=70000)`` validates at construction: ConfigError naming
  the variable (``GRPC_PORT=70000: must be <= 65535``).
* ``load(ServerSettings, port=..., given_as={"port": "--port"})`` reads the
  environment, applies explicit values (``None`` ones ignored), and names the
  flag the user typed when an explicit value is bad, the variable otherwise.
* Empty variables count as unset. Secret values never appear in errors or
  ``repr`` (:class:`Secret`).

Every problem is reported at once, one ``NAME=VALUE: reason`` item each, in a
single :class:`~ecsgrpc.errors.ConfigError` line.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from ecsgrpc.errors import ConfigError

__all__ = ["Secret", "env_names", "load", "setting"]

Kind = Literal["str", "int", "float", "bool", "path", "secret"]
_T = TypeVar("_T")

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})
_INT = re.compile(r"^[+-]?[0-9]{1,19}$")
_MAX_TEXT = 4096


class Secret:
    """A string that never shows in ``repr``/``str`` (a token, a password)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclasses.dataclass(frozen=True, slots=True)
class _Spec:
    kind: Kind
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], None] | None = None
    help: str = ""


def setting(
    default: Any,
    *,
    kind: Kind,
    ge: float | None = None,
    le: float | None = None,
    gt: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    choices: tuple[str, ...] | None = None,
    check: Callable[[Any], None] | None = None,
    help: str = "",
) -> Any:
    """A dataclass field read from ``ENV_PREFIX + NAME``; bounds are inclusive
    (``gt`` strict). ``check`` raises ValueError (its message is the reason)."""
    spec = _Spec(kind, ge, le, gt, min_length, max_length, choices, check, help)
    return dataclasses.field(default=default, metadata={"env": spec})


def _specs(cls: type) -> dict[str, _Spec]:
    return {f.name: f.metadata["env"] for f in dataclasses.fields(cls) if "env" in f.metadata}


def env_names(cls: type) -> dict[str, str]:
    """Field name -> environment variable, for every setting of ``cls``."""
    prefix = str(getattr(cls, "ENV_PREFIX", ""))
    return {name: f"{prefix}{name}".upper() for name in _specs(cls)}


def describe(cls: type) -> dict[str, str]:
    """Field name -> help text (for ``--help`` output)."""
    return {name: spec.help for name, spec in _specs(cls).items()}


def validate(instance: Any) -> None:
    """Check every field of a constructed settings object (its ``__post_init__``).

    A ``str`` given for a path or secret field becomes a Path or Secret; an
    empty one counts as unset (None).
    """
    names = env_names(type(instance))
    problems = []
    for name, spec in _specs(type(instance)).items():
        value = _coerce(spec, getattr(instance, name))
        object.__setattr__(instance, name, value)
        reason = _problem(spec, value)
        if reason is not None:
            problems.append(_item(names[name], value, spec, reason))
    if problems:
        raise ConfigError("invalid settings: " + "; ".join(problems))


def load(
    cls: type[_T],
    *,
    env: Mapping[str, str] | None = None,
    given_as: Mapping[str, str] | None = None,
    **overrides: Any,
) -> _T:
    """Settings from ``env`` (default ``os.environ``) plus explicit ``overrides``.

    ``given_as`` maps a field to the name the user typed (a CLI flag): errors
    about an explicit value name it; errors about the environment name the
    variable. Raises ConfigError listing every bad value.
    """
    source = os.environ if env is None else env
    names = env_names(cls)
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, spec in _specs(cls).items():
        explicit = overrides.get(name)
        label = (given_as or {}).get(name, names[name]) if explicit is not None else names[name]
        raw = explicit if explicit is not None else source.get(names[name])
        if raw is None or raw == "":
            continue
        try:
            value = _parse(spec, raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            problems.append(_item(label, raw, spec, str(exc)))
            continue
        reason = _problem(spec, value)
        if reason is not None:
            problems.append(_item(label, raw, spec, reason))
        values[name] = value
    unknown = set(overrides) - set(names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no setting {sorted(unknown)[0]!r}")
    if problems:
        raise ConfigError("invalid settings: " + "; ".join(problems))
    return cls(**values)


def _choice(choices: tuple[str, ...], value: str) -> str | None:
    """The choice ``value`` names, whatever its case (``info`` is ``INFO``), or None."""
    folded = value.casefold()
    return next((choice for choice in choices if choice.casefold() == folded), None)


def _coerce(spec: _Spec, value: Any) -> Any:
    if spec.choices is not None and isinstance(value, str):
        return _choice(spec.choices, value) or value
    if spec.kind in ("path", "secret") and value == "":
        return None
    if spec.kind == "path" and isinstance(value, str):
        return Path(value)
    if spec.kind == "secret" and isinstance(value, str):
        return Secret(value)
    if spec.kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _item(label: str, raw: Any, spec: _Spec, reason: str) -> str:
    shown = "<redacted>" if spec.kind == "secret" else repr(_plain(raw))
    return f"{label}={shown}: {reason}"


def _plain(raw: Any) -> Any:
    if isinstance(raw, Path):
        return str(raw)
    if isinstance(raw, str) and len(raw) > 200:
        return raw[:200] + "..."
    return raw


def _parse(spec: _Spec, text: str) -> Any:
    """The typed value of an environment string; ValueError says why not."""
    if len(text) > _MAX_TEXT:
        raise ValueError(f"longer than {_MAX_TEXT} characters")
    match spec.kind:
        case "int":
            if not _INT.match(text.strip()):
                raise ValueError("not a whole number")
            return int(text)
        case "float":
            try:
                return float(text.strip().replace("_", "x"))
            except ValueError:
                raise ValueError("not a number") from None
        case "bool":
            lowered = text.strip().lower()
            if lowered in _TRUE or lowered in _FALSE:
                return lowered in _TRUE
            raise ValueError("not a boolean (true/false, 1/0, yes/no, on/off)")
        case "path":
            if "\x00" in text:
                raise ValueError("not a file path")
            return Path(text)
        case "secret":
            return Secret(text)
    return text


def _problem(spec: _Spec, value: Any) -> str | None:
    """Why a typed value is out of bounds, or None."""
    if value is None:
        return None
    if isinstance(value, Secret):
        value = value.get_secret_value()
    if spec.kind in ("int", "float"):
        reason = _number_problem(spec, value)
        if reason is not None:
            return reason
    if isinstance(value, str):
        reason = _text_problem(spec, value)
        if reason is not None:
            return reason
    if spec.check is not None:
        try:
            spec.check(value)
        except ValueError as exc:
            return str(exc)
    return None


def _number_problem(spec: _Spec, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "not a number"
    if spec.kind == "int" and not isinstance(value, int):
        return "not a whole number"
    if not math.isfinite(value):
        return "must be a finite number"
    if spec.ge is not None and value < spec.ge:
        return f"must be >= {spec.ge:g}"
    if spec.gt is not None and value <= spec.gt:
        return f"must be > {spec.gt:g}"
    if spec.le is not None and value > spec.le:
        return f"must be <= {spec.le:g}"
    return None


def _text_problem(spec: _Spec, value: str) -> str | None:
    if spec.min_length is not None and len(value) < spec.min_length:
        return f"must have at least {spec.min_length} character(s)"
    if spec.max_length is not None and len(value) > spec.max_length:
        return f"must have at most {spec.max_length} characters"
    if spec.choices is not None and _choice(spec.choices, value) is None:
        return f"must be one of {', '.join(spec.choices)}"
    return None
