"""The public surface: what `import ecsgrpc` offers and what the probe costs to start."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import ecsgrpc


def test_every_exported_name_resolves() -> None:
    assert sorted(ecsgrpc.__all__) == sorted(ecsgrpc._EXPORTS)
    for name in ecsgrpc.__all__:
        assert getattr(ecsgrpc, name) is not None


def test_the_probe_does_not_import_the_heavy_stacks() -> None:
    check = (
        # main(argv) returns (the console script exits at once, skipping teardown)
        "import sys\n"
        "from ecsgrpc.cli import main\n"
        "main(['probe', '127.0.0.1:1', '--timeout', '0.05'])\n"
        "heavy = [m for m in ('aiobotocore', 'fastapi', 'matplotlib', 'moto') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=30
    )
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def _ecsgrpc_types(annotation: object) -> set[type]:
    """Classes from ecsgrpc named anywhere in an annotation."""
    import typing

    found: set[type] = set()
    if isinstance(annotation, type) and annotation.__module__.startswith("ecsgrpc"):
        found.add(annotation)
    for arg in typing.get_args(annotation):
        found |= _ecsgrpc_types(arg)
    return found


def test_every_type_in_a_public_signature_is_exported() -> None:
    import inspect
    import typing

    exported = {getattr(ecsgrpc, n) for n in ecsgrpc.__all__}
    callables = [
        ecsgrpc.connect,
        ecsgrpc.BalancedChannel.__init__,
        ecsgrpc.BalancedChannel.endpoints,
        ecsgrpc.serve,
        ecsgrpc.Server.__init__,
        ecsgrpc.resolve,
        ecsgrpc.register_scheme,
        ecsgrpc.register_policy,
        ecsgrpc.parse_target,
    ]
    missing: set[str] = set()
    for fn in callables:
        module = sys.modules[fn.__module__]
        from prometheus_client import CollectorRegistry

        from ecsgrpc.security.client import ChannelSecurity

        # Names some modules import only for type checking (kept out of connect()'s cost).
        lazy = {n: getattr(ecsgrpc, n) for n in ecsgrpc.__all__}
        names = {**lazy, **vars(module), "CollectorRegistry": CollectorRegistry}
        names.setdefault("ChannelSecurity", ChannelSecurity)
        hints = typing.get_type_hints(fn, names)
        for annotation in hints.values():
            for cls in _ecsgrpc_types(annotation):
                if cls not in exported and not cls.__name__.endswith("Spec"):
                    missing.add(f"{cls.__module__}.{cls.__name__} (in {fn.__qualname__})")
        assert inspect.signature(fn)
    assert not missing, sorted(missing)


def test_the_library_never_imports_the_apps() -> None:
    """A static scan: no module of src/ecsgrpc imports ecsgrpc_apps (not even lazily)."""
    import ast
    from pathlib import Path

    root = Path(ecsgrpc.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
                names = [a.value for a in node.args if isinstance(a, ast.Constant)]  # type: ignore[misc]
            for name in names:
                if str(name).split(".")[0] == "ecsgrpc_apps":
                    offenders.append(f"{path.relative_to(root.parent)}:{node.lineno} {name}")
    assert not offenders, offenders


LAZY_CHECK = """
import sys
import ecsgrpc
channel = ecsgrpc.connect({target!r})
heavy = sorted(m for m in ({modules}) if m in sys.modules)
print('LOADED', heavy)
"""


def _loaded(target: str, modules: tuple[str, ...]) -> str:
    code = LAZY_CHECK.format(target=target, modules=", ".join(repr(m) for m in modules) + ",")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


HEAVY = (
    "aiobotocore",
    "botocore",
    "aiohttp",
    "httpx",
    "pydantic",
    "pydantic_settings",
    "rich",
    "typer",
    "fastapi",
    "ecsgrpc_apps",
)  # (not grpc_reflection: grpcio's own __init__ imports it when installed)


def test_connect_on_a_static_target_loads_no_extra_and_no_dns() -> None:
    out = _loaded("static:///127.0.0.1:1", (*HEAVY, "dns.asyncresolver", "ecsgrpc.resolvers.dns"))
    assert "LOADED []" in out, out


def test_connect_on_a_dns_target_loads_no_extra_and_no_dnspython_yet() -> None:
    """dnspython and prometheus-client load with the first resolution, not at connect()."""
    out = _loaded(
        "dns:///localhost:1", (*HEAVY, "dns", "prometheus_client", "ecsgrpc.resolvers.cloudmap")
    )
    assert "LOADED []" in out, out


MODULES_CHECK = """
import json, sys
before = set(sys.modules)
{code}
print("MODULES", json.dumps(sorted(set(sys.modules) - before)))
"""


def _modules_loaded(code: str) -> set[str]:
    """Modules a fresh interpreter loads for ``code`` beyond what ``import grpc`` loads."""

    def run(snippet: str) -> set[str]:
        result = subprocess.run(
            [sys.executable, "-c", MODULES_CHECK.format(code=snippet)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return set(json.loads(result.stdout.split("MODULES ", 1)[1]))

    return run(code) - run("import grpc")


# What `import ecsgrpc; connect(target)` may load beyond `import grpc` (a new
# eager import fails here: load it at first use, or add it with its cost in
# docs/benchmarks.md). The balancer, router, call objects, metrics
# (prometheus-client), OpenTelemetry and dnspython load with the first call.
CONNECT_STATIC_MODULES = {
    "ecsgrpc",
    "ecsgrpc.balancing",
    "ecsgrpc.balancing.channel",
    "ecsgrpc.balancing.picker",
    "ecsgrpc.defaults",
    "ecsgrpc.endpoints",
    "ecsgrpc.errors",
    "ecsgrpc.resolvers",
    "ecsgrpc.resolvers.base",
    "ecsgrpc.resolvers.options",
    "ecsgrpc.resolvers.polling",
    "ecsgrpc.resolvers.registry",
    "ecsgrpc.resolvers.static",
    "ecsgrpc.targets",
    "ecsgrpc.targets_util",
    "ecsgrpc.telemetry",
}
CONNECT_DNS_MODULES = CONNECT_STATIC_MODULES - {"ecsgrpc.resolvers.static"} | {
    "ecsgrpc.resolvers.dns",
    "ecsgrpc.resolvers.hosts",
}
# Standard-library modules (public names) they may add to what grpc loads.
CONNECT_STDLIB = {"bisect", "copy", "dataclasses", "ipaddress", "random", "urllib", "urllib.parse"}


def _third_party(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names}


def _public_stdlib(modules: set[str]) -> set[str]:
    return {
        m
        for m in modules - _third_party(modules)
        if not any(part.startswith("_") for part in m.split("."))
        and not m.startswith(("encodings.", "org."))  # codecs; dataclasses probes for Jython
        and m != "org"
    }


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("static:///127.0.0.1:1", CONNECT_STATIC_MODULES),
        ("dns:///localhost:1", CONNECT_DNS_MODULES),
    ],
    ids=["static", "dns"],
)
def test_connect_loads_exactly_these_modules_beyond_grpc(target: str, expected: set[str]) -> None:
    loaded = _modules_loaded(f"import ecsgrpc\necsgrpc.connect({target!r})")
    assert _third_party(loaded) == expected, sorted(_third_party(loaded) ^ expected)
    assert _public_stdlib(loaded) <= CONNECT_STDLIB, sorted(_public_stdlib(loaded) - CONNECT_STDLIB)


# `ecsgrpc probe` (every 30 s in every task): grpc, the health stubs (protobuf)
# and the CLI's own modules; no resolver, balancer, server stack or metrics.
PROBE_MODULES = {
    "ecsgrpc",
    "ecsgrpc.cli",
    "ecsgrpc.cli.base",
    "ecsgrpc.cli.probe",
    "ecsgrpc.errors",
    "ecsgrpc.security",
    "ecsgrpc.security.client_tls",
    "ecsgrpc.security.diagnose",
    "ecsgrpc.security.pem",
    "ecsgrpc.server",
    "ecsgrpc.server.probe",
    "ecsgrpc.targets_util",
}


def test_the_probe_loads_only_grpc_the_health_stubs_and_its_own_modules() -> None:
    loaded = _modules_loaded(
        "from ecsgrpc.cli import main\nmain(['probe', '127.0.0.1:1', '--timeout', '0.05'])"
    )
    ours = {m for m in loaded if m.split(".")[0] == "ecsgrpc"}
    assert ours == PROBE_MODULES, sorted(ours ^ PROBE_MODULES)
    others = {m.split(".")[0] for m in _third_party(loaded) - ours}
    assert others <= {"google", "grpc", "grpc_health"}, sorted(others)


# Import name -> the distribution that provides it, for the declared-imports check.
DISTRIBUTIONS = {
    "grpc": "grpcio",
    "grpc_health": "grpcio-health-checking",
    "grpc_reflection": "grpcio-reflection",
    "google": "protobuf",
    "dns": "dnspython",
    "prometheus_client": "prometheus-client",
    "aiobotocore": "aiobotocore",
    "botocore": "botocore",
    "aiohttp": "aiohttp",
    "boto3": "boto3",
    "moto": "moto",
    "fastapi": "fastapi",
    "starlette": "starlette",
    "h11": "h11",
    "uvicorn": "uvicorn",
    "uvloop": "uvloop",
    "httptools": "httptools",
    "pydantic": "pydantic",
    "pydantic_settings": "pydantic-settings",
    "httpx": "httpx",
    "rich": "rich",
    "matplotlib": "matplotlib",
    "opentelemetry": "opentelemetry-api",
    "xds": "xds-protos",
    "envoy": "xds-protos",
    "udpa": "xds-protos",
    "validate": "xds-protos",
}


def _imports(package: str) -> dict[str, set[str]]:
    """Top-level third-party imports of a package: name -> files importing it."""
    import ast
    from pathlib import Path

    root = Path(ecsgrpc.__file__).parent.parent / package
    found: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        if "_proto" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("ecsgrpc", "ecsgrpc_apps"):
                    found.setdefault(top, set()).add(str(path.relative_to(root.parent)))
    return found


def _requirements() -> tuple[set[str], set[str]]:
    """(core distributions, distributions of any extra) as pyproject declares them."""
    import re
    import tomllib
    from pathlib import Path

    project = tomllib.loads(
        (Path(ecsgrpc.__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    )["project"]

    def name(req: str) -> str:
        return re.split(r"[<>=!\[; ]", req, maxsplit=1)[0].lower()

    core = {name(r) for r in project["dependencies"]}
    extras = {name(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    return core, extras


# Library modules that may import an extra's package, loaded only when used.
LIBRARY_EXTRAS = {
    "aiobotocore": "aws",
    "botocore": "aws",
    "aiohttp": "aws",
    "grpc_reflection": "agent",
    "envoy": "xds",
    "opentelemetry": "otel",
}


def test_every_import_is_declared() -> None:
    core, extras = _requirements()
    undeclared = []
    for package in ("ecsgrpc", "ecsgrpc_apps"):
        for top, files in sorted(_imports(package).items()):
            dist = DISTRIBUTIONS.get(top)
            assert dist is not None, (
                f"{top} (imported by {sorted(files)}) has no known distribution"
            )
            allowed = core if package == "ecsgrpc" and top not in LIBRARY_EXTRAS else core | extras
            if dist not in allowed:
                undeclared.append(f"{top} -> {dist} ({sorted(files)[0]})")
    assert not undeclared, undeclared


def test_the_core_is_only_what_the_library_needs() -> None:
    core, _ = _requirements()
    assert core == {
        "grpcio",
        "grpcio-health-checking",
        "protobuf",
        "dnspython",
        "prometheus-client",
    }


def test_the_otel_and_xds_extras_work_together() -> None:
    """xds-protos carries an old opentelemetry/proto; `make` puts the real one back
    (scripts/fix_otel_proto.py): the OTLP messages and the xDS ones both import."""
    from envoy.service.discovery.v3 import discovery_pb2
    from opentelemetry.proto.common.v1 import common_pb2

    assert hasattr(common_pb2, "InstrumentationScope")
    assert discovery_pb2.DiscoveryRequest.DESCRIPTOR.full_name.startswith("envoy.service")


def test_connect_loads_the_call_machinery_on_first_use_only() -> None:
    """What a process pays for `import ecsgrpc; connect(static)`: grpc and our
    target parsing; metrics, the balancer and OpenTelemetry load with the first
    call (the cost numbers are in docs/benchmarks.md)."""
    check = (
        "import sys, ecsgrpc\n"
        "channel = ecsgrpc.connect('static:///127.0.0.1:1')\n"
        "lazy = ('prometheus_client', 'opentelemetry', 'dns', 'ecsgrpc.balancing.balancer',\n"
        "        'ecsgrpc.balancing.router', 'ecsgrpc.balancing.calls', 'ecsgrpc.metrics')\n"
        "print('AT CONNECT', [m for m in lazy if m in sys.modules])\n"
        "channel.unary_unary('/grpc.health.v1.Health/Check')\n"
        "print('AFTER USE', [m for m in lazy[3:] if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=30
    )
    assert "AT CONNECT []" in result.stdout, result.stdout + result.stderr
    assert (
        "AFTER USE ['ecsgrpc.balancing.balancer', 'ecsgrpc.balancing.router', "
        "'ecsgrpc.balancing.calls', 'ecsgrpc.metrics']" in result.stdout
    ), result.stdout + result.stderr
