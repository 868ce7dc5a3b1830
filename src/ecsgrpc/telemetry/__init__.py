"""OpenTelemetry traces and gRPC's metrics for the balanced channel and ``serve()``.

Optional: it works when ``opentelemetry-api`` is installed (the ``otel``
extra) and costs nothing when it is not (nothing is imported). The library
only uses the API; the application chooses the SDK and exporters (the
apps do it from the standard ``OTEL_*`` variables).

What is recorded (OpenTelemetry semantic conventions for RPC; gRFC A66):

* a CLIENT span per balanced call, named ``package.Service/Method``, with
  ``rpc.system=grpc``, ``rpc.service``, ``rpc.method``,
  ``rpc.grpc.status_code``, ``server.address``/``server.port`` of the last
  attempt, and one ``attempt`` event per attempt (endpoint address and port,
  zone, attempt number, and for a retry the status that caused it);
* W3C trace context (``traceparent``, and ``baggage``, by the global
  propagator) in each attempt's metadata;
* a SERVER span per call served, parented by the caller's ``traceparent``;
* the metrics of gRFC A66: ``grpc.client.attempt.started``,
  ``grpc.client.attempt.duration``, ``grpc.client.call.duration``,
  ``grpc.server.call.started``, ``grpc.server.call.duration`` (attributes
  ``grpc.method``, ``grpc.target``, ``grpc.status``). The message-size
  histograms of A66 are not recorded (grpc.aio does not expose compressed sizes).

``Telemetry`` picks the providers; by default the global ones
(``opentelemetry.trace.set_tracer_provider`` and its metrics twin).
``OTEL_SDK_DISABLED=true`` turns all of it off.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["Telemetry", "available", "resolve"]


@functools.cache
def _api_installed() -> bool:
    # Looked up without importing anything (find_spec of "opentelemetry.trace"
    # would import the opentelemetry package): connect() loads the API only
    # with the first call.
    spec = importlib.util.find_spec("opentelemetry")
    if spec is None or spec.submodule_search_locations is None:
        return False
    return any(
        os.path.isdir(os.path.join(location, "trace"))
        for location in spec.submodule_search_locations
    )


def available() -> bool:
    """Whether instrumentation is on by default: the API is installed and
    ``OTEL_SDK_DISABLED`` is not ``true``."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return _api_installed()


@dataclass(frozen=True, slots=True)
class Telemetry:
    """Where spans and metrics go: ``None`` means the global provider."""

    tracer_provider: Any = None
    meter_provider: Any = None


def resolve(option: Telemetry | bool | None) -> Telemetry | None:
    """``None``: on when :func:`available`; ``False``: off; ``True``: on (the
    global providers); a :class:`Telemetry`: on, with its providers."""
    if option is None:
        return Telemetry() if available() else None
    if option is False:
        return None
    if not _api_installed():
        from ecsgrpc.errors import ConfigError

        raise ConfigError("telemetry needs opentelemetry-api: pip install 'ecsgrpc[otel]'")
    return Telemetry() if option is True else option
