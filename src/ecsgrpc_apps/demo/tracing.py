"""The demo's trace: OTLP export from the gateway and agents to a receiver on loopback,
and one conversation's trace picked for the summary.

On only when the ``otel`` extra is installed and the user has not pointed
OpenTelemetry elsewhere (``OTEL_EXPORTER_OTLP_ENDPOINT`` set: the demo then
exports there, as every ``ecsgrpc`` process would, and shows no trace).
One conversation in 20 is traced (``parentbased_traceidratio``), enough to
pick from without slowing the demo.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import AsyncIterator
from typing import Any

from ecsgrpc_apps.telemetry.setup import configure_from_env

__all__ = ["demo_tracing", "pick_trace"]

_NEEDED = ("opentelemetry.sdk", "opentelemetry.proto", "opentelemetry.exporter.otlp.proto.grpc")
HTTP_SPAN = "POST /v1/conversations"


def _installed() -> bool:
    try:
        return all(importlib.util.find_spec(name) is not None for name in _NEEDED)
    except ModuleNotFoundError:
        return False


@contextlib.asynccontextmanager
async def demo_tracing() -> AsyncIterator[Any]:
    """Yields the running ``OtlpReceiver``, or None when the demo shows no trace."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true" or not _installed():
        yield None
        return
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        configure_from_env("api-gateway")
        yield None
        return
    from ecsgrpc_apps.telemetry.collector import OtlpReceiver

    async with OtlpReceiver("127.0.0.1") as receiver:
        os.environ.update(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_BSP_SCHEDULE_DELAY": "200",
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.05",
            }
        )
        configure_from_env("api-gateway")  # the gateway runs in this process
        try:
            yield receiver
        finally:
            from opentelemetry import trace

            flush = getattr(trace.get_tracer_provider(), "shutdown", None)
            if flush is not None:
                flush()


def pick_trace(receiver: Any) -> dict[str, Any] | None:
    """A complete conversation trace (HTTP span, call span, agent span), preferring
    one whose call was retried on another agent; None when none arrived."""
    from opentelemetry import trace

    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if force_flush is not None:
        force_flush()
    best: tuple[int, int, str] | None = None
    by_trace: dict[str, list[Any]] = {}
    for span in list(receiver.spans):
        by_trace.setdefault(span.trace_id, []).append(span)
    for trace_id, spans in by_trace.items():
        kinds = {(s.name, s.kind) for s in spans}
        if (HTTP_SPAN, "SERVER") not in kinds or not any(
            s.kind == "SERVER" and s.service == "workflow-agent" for s in spans
        ):
            continue
        attempts = max((len(s.events) for s in spans if s.kind == "CLIENT"), default=0)
        latest = max(s.end_ns for s in spans)
        if best is None or (attempts, latest) > best[:2]:
            best = (attempts, latest, trace_id)
    if best is None:
        return None
    spans = receiver.trace(best[2])
    return {"trace_id": best[2], "spans": [s.to_dict() for s in spans]}
