"""Names shared by the client and server instrumentation (semantic conventions, gRFC A66)."""

from __future__ import annotations

from typing import Any

import grpc

INSTRUMENTATION = "ecsgrpc"

# gRFC A66: latency histogram boundaries, seconds.
LATENCY_BUCKETS = (
    0.0, 0.00001, 0.00005, 0.0001, 0.0003, 0.0006, 0.0008, 0.001, 0.002, 0.003, 0.004,
    0.005, 0.006, 0.008, 0.01, 0.013, 0.016, 0.02, 0.025, 0.03, 0.04, 0.05, 0.065, 0.08,
    0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.4, 0.5, 0.65, 0.8, 1.0, 2.0, 5.0, 10.0, 20.0,
    50.0, 100.0,
)  # fmt: skip

# Semantic conventions for gRPC: server spans are errors only for these codes
# (the others are the client's doing); client spans for every code but OK.
SERVER_ERROR_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def split_method(method: str) -> tuple[str, str, str]:
    """``/pkg.Service/Method`` -> (``pkg.Service/Method``, ``pkg.Service``, ``Method``).

    The first is the span name and A66's ``grpc.method``.
    """
    full = method.lstrip("/")
    service, _, name = full.rpartition("/")
    return full, service, name


def split_address(address: str) -> tuple[str, int | None]:
    """``host:port`` / ``[v6]:port`` / ``ipv4:h:p`` (grpc's peer form) -> (host, port)."""
    for prefix in ("ipv4:", "ipv6:"):
        if address.startswith(prefix):
            address = address[len(prefix) :]
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return address, None
    host = host.strip("[]")
    from urllib.parse import unquote

    return unquote(host), int(port)


def rpc_attributes(service: str, name: str) -> dict[str, str]:
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


class Activity:
    """Whether anything would record: explicit providers, or global ones an SDK set.

    With only the API installed the global providers are proxies that record
    nothing; instrumenting then would cost every call (measured here: 15 % of
    unary throughput) for nothing, so callers skip it until a provider is set.
    Once active, always active (a global provider cannot be unset).

    Asked once per call, so while inactive the common answer costs no function
    call: it reads the two module globals that the API's ``set_*_provider``
    write (both None: nothing set, the proxies answer), and asks the getters
    only once one of them is set. Providers named in ``OTEL_PYTHON_*_PROVIDER``
    are loaded at construction (the getters load them on first use).
    """

    __slots__ = ("_active", "_metrics", "_trace")

    def __init__(self, tracer_provider: object, meter_provider: object) -> None:
        self._active = tracer_provider is not None or meter_provider is not None
        self._trace: Any = None
        self._metrics: Any = None
        if self._active:
            return
        from opentelemetry import trace
        from opentelemetry.metrics import _internal as metrics_internal

        if hasattr(trace, "_TRACER_PROVIDER") and hasattr(metrics_internal, "_METER_PROVIDER"):
            self._trace, self._metrics = trace, metrics_internal
        self._check()  # loads providers named in the environment

    def __call__(self) -> bool:
        if self._active:
            return True
        if (
            self._trace is not None
            and self._trace._TRACER_PROVIDER is None
            and self._metrics._METER_PROVIDER is None
        ):
            return False
        return self._check()

    def _check(self) -> bool:
        from opentelemetry import metrics, trace

        tracer_provider = trace.get_tracer_provider()
        meter_provider = metrics.get_meter_provider()
        tracing = not isinstance(
            tracer_provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider
        )
        metering = type(meter_provider).__name__ not in ("_ProxyMeterProvider", "NoOpMeterProvider")
        self._active = tracing or metering
        return self._active
