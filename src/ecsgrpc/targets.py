"""Parse a target string into a resolver spec (docs/discovery.md).

Grammar (``|`` separates the links of a fallback chain)::

    host:port | [v6]:port                      one fixed endpoint
    static:///h1:p1,h2:p2                      fixed list
    dns:///name[:port]  dns:name[:port]        A/AAAA records, TTL honoured; names in
                                               /etc/hosts answer first (as for grpc)
    dns://NS_IP[:NS_PORT]/name[:port]          ... asking that nameserver only
    dns+srv:///_grpc._tcp.name                 SRV records (host and port per record)
    dns+srv://NS_IP[:NS_PORT]/_grpc._tcp.name  ... asking that nameserver
    cloudmap://NAMESPACE/SERVICE?health=H&port=P&poll=S&attr.KEY=VALUE
    ecs://CLUSTER/SERVICE?port=P&poll=S
    A|B                                        B is asked when A errors

gRPC's own names (its ``doc/naming.md``) are accepted too, as fixed lists::

    ipv4:ADDR[:port][,ADDR[:port],...]         IPv4 literals
    ipv6:ADDR[,[ADDR]:port,...]                IPv6 literals (bracketed with a port)
    unix:path  unix:///absolute/path           a Unix domain socket
    unix-abstract:name                         a Linux abstract socket

Where gRPC has a default port (``dns:``, ``ipv4:``, ``ipv6:``) it is 443, as
in gRPC; a bare ``host:port`` still needs its port.

:func:`parse_target` returns a frozen spec per scheme and raises
:class:`~ecsgrpc.errors.ConfigError` (quoting the target and saying what is
wrong) for anything else; it never raises another exception.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from ecsgrpc.errors import ConfigError
from ecsgrpc.targets_util import parse_host_port, parse_port

__all__ = [
    "CLOUDMAP_HEALTH_FILTERS",
    "GRPC_DEFAULT_PORT",
    "DEFAULT_CLOUDMAP_HEALTH",
    "DEFAULT_CLOUDMAP_POLL_SECONDS",
    "DEFAULT_ECS_POLL_SECONDS",
    "ChainSpec",
    "CloudMapSpec",
    "CustomSpec",
    "DnsSpec",
    "EcsSpec",
    "SrvSpec",
    "StaticSpec",
    "TargetSpec",
    "add_scheme",
    "parse_target",
]

# HEALTHY_OR_ELSE_ALL by default: healthy instances when there are any, and
# every instance when none is healthy. It is what Route 53 answers for a
# MULTIVALUE record set, so the API and DNS links of the default chain agree,
# and an outage of Cloud Map's health reporting degrades to "try them all"
# (the balancer's own gRPC health checks still decide) instead of "no endpoint".
CLOUDMAP_HEALTH_FILTERS = ("HEALTHY", "ALL", "HEALTHY_OR_ELSE_ALL")
DEFAULT_CLOUDMAP_HEALTH = "HEALTHY_OR_ELSE_ALL"
# DiscoverInstances has generous quotas (thousands/s per account) but every
# client polls; 5 s is half the seed's DNS TTL of 10 s.
DEFAULT_CLOUDMAP_POLL_SECONDS = 5.0
# ListTasks/DescribeTasks share ECS's much smaller API rate limit.
DEFAULT_ECS_POLL_SECONDS = 10.0
_MIN_POLL_SECONDS = 0.05
_MAX_POLL_SECONDS = 3600.0
_DNS_DEFAULT_PORT = 53
# gRPC's default port for dns:, ipv4: and ipv6: targets without one.
GRPC_DEFAULT_PORT = 443
# gRPC's scheme forms written without "//" (``dns:host:port``, ``ipv4:1.2.3.4``).
_GRPC_OPAQUE = ("ipv4", "ipv6", "unix", "unix-abstract", "dns")

# Cloud Map's own patterns: namespace and service names, attribute keys/values.
_NAMESPACE = re.compile(r"^[!-~]{1,1024}$")
_SERVICE = re.compile(r"^(?=.{1,127}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_ATTR_KEY = re.compile(r"^[a-zA-Z0-9!-~]{1,255}$")
_ATTR_VALUE = re.compile(r"^([a-zA-Z0-9!-~][ \ta-zA-Z0-9!-~]*)?[a-zA-Z0-9!-~]?$")
# ECS cluster and service names.
_ECS_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_DNS_NAME = re.compile(r"^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$")


@dataclass(frozen=True, slots=True)
class StaticSpec:
    """A fixed list of ``(host, port)`` pairs."""

    addresses: tuple[tuple[str, int], ...]
    target: str = ""


@dataclass(frozen=True, slots=True)
class DnsSpec:
    """A/AAAA records of ``name``; ``nameserver`` is ``(ip, port)`` or the system's."""

    name: str
    port: int
    nameserver: tuple[str, int] | None = None
    target: str = ""


@dataclass(frozen=True, slots=True)
class SrvSpec:
    """SRV records of ``name`` (e.g. ``_grpc._tcp.agent.local``), then their targets."""

    name: str
    nameserver: tuple[str, int] | None = None
    target: str = ""


@dataclass(frozen=True, slots=True)
class CloudMapSpec:
    """Cloud Map ``DiscoverInstances`` on a namespace/service.

    ``port`` is used for instances without ``AWS_INSTANCE_PORT``; ``attributes``
    are ``QueryParameters`` (sorted ``(key, value)`` pairs).
    """

    namespace: str
    service: str
    health: str = DEFAULT_CLOUDMAP_HEALTH
    port: int | None = None
    poll: float = DEFAULT_CLOUDMAP_POLL_SECONDS
    attributes: tuple[tuple[str, str], ...] = ()
    target: str = ""


@dataclass(frozen=True, slots=True)
class EcsSpec:
    """RUNNING tasks of an ECS service (ENI private IPs); ``port`` is the gRPC port."""

    cluster: str
    service: str
    port: int
    poll: float = DEFAULT_ECS_POLL_SECONDS
    target: str = ""


@dataclass(frozen=True, slots=True)
class ChainSpec:
    """Fallback chain: each link is asked only when the ones before it error."""

    links: tuple[LinkSpec, ...]
    target: str = ""


@dataclass(frozen=True, slots=True)
class CustomSpec:
    """A target of a scheme added with :func:`ecsgrpc.register_scheme`; its
    resolver factory parses ``target`` itself."""

    scheme: str
    target: str


LinkSpec = StaticSpec | DnsSpec | SrvSpec | CloudMapSpec | EcsSpec | CustomSpec
TargetSpec = LinkSpec | ChainSpec


def parse_target(target: str) -> TargetSpec:
    """Parse ``target``; raise ConfigError (quoting it) when it is not valid."""
    if not isinstance(target, str):
        raise ConfigError(f"{target!r}: a target must be a string")
    text = target.strip()
    if not text:
        raise ConfigError(f"{target!r}: empty target")
    parts = text.split("|")
    if len(parts) == 1:
        return _parse_link(text, target)
    links = []
    for part in parts:
        if not part.strip():
            raise ConfigError(f"{target!r}: empty link in fallback chain")
        links.append(_parse_link(part.strip(), target))
    return ChainSpec(tuple(links), target=text)


def _parse_link(text: str, whole: str) -> LinkSpec:
    head, colon, tail = text.partition(":")
    if colon and head.lower() in _GRPC_OPAQUE and not tail.startswith("//"):
        return _parse_opaque(head.lower(), tail, text, whole)
    if head.lower() == "unix" and tail.startswith("//"):
        return _unix_spec("unix", tail[2:], text, whole, absolute=True)
    scheme, sep, rest = text.partition("://")
    if not sep:
        if "/" in text or "?" in text:
            raise ConfigError(f"{whole!r}: {text!r} is not host:port nor scheme://...")
        return StaticSpec((_host_port(text, whole),), target=text)
    if scheme.lower() in _CUSTOM_SCHEMES:
        return CustomSpec(scheme.lower(), text)
    parser = _PARSERS.get(scheme.lower())
    if parser is None:
        known = ", ".join(sorted({*_PARSERS, *_CUSTOM_SCHEMES}))
        raise ConfigError(f"{whole!r}: unknown scheme {scheme!r} (known: {known})")
    if not text.isascii() or any(c.isspace() or ord(c) < 32 for c in text):
        raise ConfigError(f"{whole!r}: spaces and non-ASCII characters are not allowed")
    if "#" in rest:
        raise ConfigError(f"{whole!r}: '#' fragments are not allowed")
    authority, _, path_query = rest.partition("/")
    path, _, query = path_query.partition("?")
    return parser(_Parts(whole, text, authority, path, query))


def _parse_opaque(scheme: str, rest: str, text: str, whole: str) -> LinkSpec:
    """gRPC's ``scheme:rest`` forms (no ``//``)."""
    if scheme in ("unix", "unix-abstract"):
        return _unix_spec(scheme, rest, text, whole, absolute=False)
    if not rest or not text.isascii() or any(c.isspace() for c in text):
        raise ConfigError(f"{whole!r}: {scheme}: needs an address after the colon")
    if scheme == "dns":
        host, port = _host_port(rest, whole, default_port=GRPC_DEFAULT_PORT)
        parts = _Parts(whole, text, "", rest, "")
        return DnsSpec(_dns_name(host, parts), port, None, target=text)
    version = 4 if scheme == "ipv4" else 6
    addresses = tuple(_ip_literal(item, version, whole) for item in rest.split(","))
    if len(set(addresses)) != len(addresses):
        raise ConfigError(f"{whole!r}: an address is listed twice")
    return StaticSpec(addresses, target=text)


def _ip_literal(item: str, version: int, whole: str) -> tuple[str, int]:
    host, port = _host_port(item, whole, default_port=GRPC_DEFAULT_PORT)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is None or ip.version != version:
        raise ConfigError(f"{whole!r}: {host!r} is not an IPv{version} address")
    return host, port


def _unix_spec(scheme: str, path: str, text: str, whole: str, *, absolute: bool) -> StaticSpec:
    """A socket path as grpc takes it: ``unix:PATH`` or ``unix-abstract:NAME``."""
    if not path:
        raise ConfigError(f"{whole!r}: missing socket path after {scheme}:")
    if absolute and not path.startswith("/"):
        raise ConfigError(f"{whole!r}: unix:// needs an absolute path (unix:///run/app.sock)")
    if "\x00" in path or "|" in path or "," in path:
        raise ConfigError(f"{whole!r}: {path!r} is not a usable socket path")
    if scheme == "unix" and len(path.encode()) > _MAX_UNIX_PATH:
        raise ConfigError(f"{whole!r}: socket path longer than {_MAX_UNIX_PATH} bytes")
    return StaticSpec(((f"{scheme}:{path}", 0),), target=text)


# sun_path holds 108 bytes on Linux, the terminating NUL included.
_MAX_UNIX_PATH = 107


@dataclass(frozen=True, slots=True)
class _Parts:
    whole: str
    text: str
    authority: str
    path: str
    query: str

    def fail(self, what: str) -> ConfigError:
        return ConfigError(f"{self.whole!r}: {what}")


def _host_port(text: str, whole: str, default_port: int | None = None) -> tuple[str, int]:
    try:
        return parse_host_port(text, default_port=default_port)
    except ConfigError as exc:
        if text == whole:
            raise
        raise ConfigError(f"{whole!r}: {exc}") from None


def _parse_static(p: _Parts) -> StaticSpec:
    if p.authority:
        raise p.fail(f"static targets take no authority (got {p.authority!r}); use static:///")
    _no_query(p)
    if not p.path:
        raise p.fail("static target lists no address")
    addresses = tuple(_host_port(item, p.whole) for item in p.path.split(","))
    if len(set(addresses)) != len(addresses):
        raise p.fail("static target lists an address twice")
    return StaticSpec(addresses, target=p.text)


def _parse_dns(p: _Parts) -> DnsSpec:
    _no_query(p)
    if not p.path:
        raise p.fail("missing name:port after dns:///")
    host, port = _host_port(p.path, p.whole, default_port=GRPC_DEFAULT_PORT)
    return DnsSpec(_dns_name(host, p), port, _nameserver(p), target=p.text)


def _parse_srv(p: _Parts) -> SrvSpec:
    _no_query(p)
    if not p.path:
        raise p.fail("missing SRV name after dns+srv:/// (e.g. _grpc._tcp.agent.local)")
    return SrvSpec(_dns_name(p.path, p), _nameserver(p), target=p.text)


def _dns_name(name: str, p: _Parts) -> str:
    if not _DNS_NAME.match(name) or ".." in name:
        raise p.fail(f"{name!r} is not a valid DNS name")
    return name


def _nameserver(p: _Parts) -> tuple[str, int] | None:
    if not p.authority:
        return None
    host, port = _host_port(p.authority, p.whole, default_port=_DNS_DEFAULT_PORT)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise p.fail(f"nameserver {host!r} must be an IP address") from None
    return host, port


def _parse_cloudmap(p: _Parts) -> CloudMapSpec:
    namespace, service = unquote(p.authority), unquote(p.path)
    if not namespace:
        raise p.fail("missing Cloud Map namespace (cloudmap://NAMESPACE/SERVICE)")
    if not _NAMESPACE.match(namespace):
        raise p.fail(f"{namespace!r} is not a valid Cloud Map namespace name")
    if not service:
        raise p.fail("missing Cloud Map service (cloudmap://NAMESPACE/SERVICE)")
    if not _SERVICE.match(service):
        raise p.fail(f"{service!r} is not a valid Cloud Map service name")
    query = _query(p, ("health", "port", "poll"), attr_prefix="attr.")
    health = query.pop("health", DEFAULT_CLOUDMAP_HEALTH).upper()
    if health not in CLOUDMAP_HEALTH_FILTERS:
        allowed = ", ".join(CLOUDMAP_HEALTH_FILTERS)
        raise p.fail(f"health={health!r} is not one of {allowed}")
    port = _optional(query.pop("port", None), lambda v: parse_port(v, context=p.whole))
    poll = _poll(query.pop("poll", None), DEFAULT_CLOUDMAP_POLL_SECONDS, p)
    attrs = tuple(sorted((k.removeprefix("attr."), v) for k, v in query.items()))
    for key, value in attrs:
        if not _ATTR_KEY.match(key):
            raise p.fail(f"attribute filter key {key!r} is not a valid Cloud Map attribute name")
        if len(value) > 1024 or not _ATTR_VALUE.match(value):
            raise p.fail(f"attribute filter attr.{key}={value!r} is not a valid value")
    return CloudMapSpec(namespace, service, health, port, poll, attrs, target=p.text)


def _parse_ecs(p: _Parts) -> EcsSpec:
    cluster, service = p.authority, p.path
    if not cluster or not _ECS_NAME.match(cluster):
        raise p.fail(f"{cluster!r} is not a valid ECS cluster name (ecs://CLUSTER/SERVICE)")
    if not service or not _ECS_NAME.match(service):
        raise p.fail(f"{service!r} is not a valid ECS service name (ecs://CLUSTER/SERVICE)")
    query = _query(p, ("port", "poll"))
    if "port" not in query:
        raise p.fail("missing port: ecs targets need ?port=N (the tasks' gRPC port)")
    port = parse_port(query["port"], context=p.whole)
    poll = _poll(query.get("poll"), DEFAULT_ECS_POLL_SECONDS, p)
    return EcsSpec(cluster, service, port, poll, target=p.text)


def _no_query(p: _Parts) -> None:
    if p.query:
        raise p.fail(f"this scheme takes no query parameters (got {p.query!r})")


def _query(p: _Parts, keys: tuple[str, ...], *, attr_prefix: str | None = None) -> dict[str, str]:
    """Query pairs, each key at most once and known (or starting with attr_prefix)."""
    found: dict[str, str] = {}
    for item in p.query.split("&") if p.query else ():
        raw_key, eq, raw_value = item.partition("=")
        key, value = unquote(raw_key), unquote(raw_value)
        if not eq:
            raise p.fail(f"query item {item!r} is not KEY=VALUE")
        known = key in keys or (attr_prefix is not None and key.startswith(attr_prefix))
        if not known:
            allowed = ", ".join(keys) + (f", {attr_prefix}KEY" if attr_prefix else "")
            raise p.fail(f"unknown query parameter {key!r} (allowed: {allowed})")
        if key in found:
            raise p.fail(f"query parameter {key!r} given twice")
        found[key] = value
    return found


def _poll(raw: str | None, default: float, p: _Parts) -> float:
    if raw is None:
        return default
    text = raw.removesuffix("s")
    try:
        value = float(text)
    except ValueError:
        raise p.fail(f"poll={raw!r} is not a number of seconds") from None
    if not math.isfinite(value) or not _MIN_POLL_SECONDS <= value <= _MAX_POLL_SECONDS:
        raise p.fail(f"poll={raw!r} is out of range {_MIN_POLL_SECONDS}-{_MAX_POLL_SECONDS:g} s")
    return value


def _optional(raw: str | None, convert: Callable[[str], int]) -> int | None:
    return None if raw is None else convert(raw)


_PARSERS: dict[str, Callable[[_Parts], LinkSpec]] = {
    "static": _parse_static,
    "dns": _parse_dns,
    "dns+srv": _parse_srv,
    "cloudmap": _parse_cloudmap,
    "ecs": _parse_ecs,
}

# Schemes added at run time (ecsgrpc.resolvers.registry.register_scheme).
_CUSTOM_SCHEMES: set[str] = set()
_SCHEME_NAME = re.compile(r"^[a-z][a-z0-9+.-]{0,31}$")
RESERVED_SCHEMES = frozenset({*_PARSERS, *_GRPC_OPAQUE, "xds"})


def add_scheme(scheme: str) -> str:
    """Let :func:`parse_target` accept ``scheme://...`` as a :class:`CustomSpec`.

    Returns the scheme in lower case. Raises ConfigError for an invalid name or
    one of the built-in (or gRPC's) schemes.
    """
    name = scheme.lower() if isinstance(scheme, str) else ""
    if not _SCHEME_NAME.match(name):
        raise ConfigError(f"scheme {scheme!r} must match [a-z][a-z0-9+.-]*")
    if name in RESERVED_SCHEMES:
        raise ConfigError(f"scheme {name!r} is built in and cannot be replaced")
    _CUSTOM_SCHEMES.add(name)
    return name
