"""Switch OpenTelemetry export on from the standard ``OTEL_*`` environment variables.

Export is on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or its ``_TRACES_`` /
``_METRICS_`` form) is set, or ``OTEL_TRACES_EXPORTER`` /
``OTEL_METRICS_EXPORTER`` names an exporter (``otlp``, ``console``, ``none``);
``OTEL_SDK_DISABLED=true`` turns everything off. The OTLP exporters read their
own variables (endpoint, headers, ``OTEL_EXPORTER_OTLP_INSECURE``, timeouts),
the batch processor ``OTEL_BSP_*``, the metric reader
``OTEL_METRIC_EXPORT_INTERVAL``, the resource ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES``. OTLP goes over gRPC (``OTEL_EXPORTER_OTLP_PROTOCOL``
may only be ``grpc``). Spans and metrics are flushed when the process exits.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping

from ecsgrpc.errors import ConfigError

__all__ = ["configure_from_env"]

log = logging.getLogger(__name__)

_KNOWN = frozenset({"otlp", "console", "none"})


def _exporters(env: Mapping[str, str], signal: str) -> list[str]:
    """Exporter names for ``signal`` (traces, metrics): the variable, else otlp
    when an OTLP endpoint is set, else none."""
    variable = f"OTEL_{signal.upper()}_EXPORTER"
    raw = env.get(variable, "").strip()
    if not raw:
        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
            f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    for name in names:
        if name not in _KNOWN:
            raise ConfigError(
                f"{variable}={raw}: unknown exporter {name!r}; choose from otlp, console, none"
            )
    return [n for n in names if n != "none"]


def configure_from_env(
    service_name: str, instance_id: str | None = None, env: Mapping[str, str] | None = None
) -> list[str]:
    """Install global tracer and meter providers as ``env`` asks.

    ``service_name`` is used when neither ``OTEL_SERVICE_NAME`` nor
    ``OTEL_RESOURCE_ATTRIBUTES`` names one. Returns what was switched on
    (e.g. ``["traces:otlp", "metrics:otlp"]``; empty: nothing). Raises
    ConfigError naming a bad variable, or when export is asked for without the
    ``otel`` extra installed.
    """
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    traces, metric_exporters = _exporters(env, "traces"), _exporters(env, "metrics")
    if not traces and not metric_exporters:
        return []
    protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc").strip()
    if protocol != "grpc":
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: only grpc is supported (OTLP/gRPC)"
        )
    if importlib.util.find_spec("opentelemetry.sdk") is None:
        raise ConfigError(
            "OpenTelemetry export is configured (OTEL_* variables) but the SDK is not "
            "installed: pip install 'ecsgrpc[otel]'"
        )
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        MetricReader,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({} if instance_id is None else {"service.instance.id": instance_id})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": service_name}))
    on: list[str] = []
    if traces:
        provider = TracerProvider(resource=resource)
        for name in traces:
            if name == "otlp":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                    OTLPSpanExporter,
                )

                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            else:
                provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
            on.append(f"traces:{name}")
        trace.set_tracer_provider(provider)
    if metric_exporters:
        readers: list[MetricReader] = []
        for name in metric_exporters:
            if name == "otlp":
                from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                    OTLPMetricExporter,
                )

                readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
            else:
                readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
            on.append(f"metrics:{name}")
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    log.info("OpenTelemetry export on: %s", ", ".join(on), extra={"otel": ",".join(on)})
    return on
