"""The agent's load as a CloudWatch metric, through the embedded metric format (EMF).

Every ``interval`` seconds the agent writes one JSON line to stdout holding its
number of conversations in flight. On ECS the awslogs driver sends the line to
CloudWatch Logs, which extracts the metric (no API call, no IAM permission);
the Terraform module's target-tracking policy scales the agents on its
per-task average. The line follows the EMF specification: a root ``_aws``
object with ``Timestamp`` (ms since the epoch) and ``CloudWatchMetrics``
(namespace, dimension sets naming root keys, metric definitions), and each
dimension and metric value as a root member.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

__all__ = ["METRIC_NAME", "emf_line", "parse_dimensions", "publish"]

METRIC_NAME = "ConversationsInFlight"


def parse_dimensions(text: str) -> dict[str, str]:
    """``"ClusterName=c,ServiceName=s"`` as a dict; ValueError names a bad item."""
    dims: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"dimension {item!r} is not NAME=VALUE")
        dims[name.strip()] = value.strip()
    if len(dims) > 30:  # EMF allows at most 30 dimensions per set
        raise ValueError(f"{len(dims)} dimensions; EMF allows at most 30")
    return dims


def emf_line(
    namespace: str, dimensions: Mapping[str, str], value: float, *, timestamp_ms: int
) -> str:
    """One EMF record (a JSON line) with the in-flight count under ``dimensions``."""
    record: dict[str, object] = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [sorted(dimensions)],
                    "Metrics": [{"Name": METRIC_NAME, "Unit": "Count"}],
                }
            ],
        },
        **dimensions,
        METRIC_NAME: value,
    }
    return json.dumps(record, separators=(",", ":"))


async def publish(
    namespace: str,
    dimensions: Mapping[str, str],
    in_flight: Callable[[], int],
    *,
    interval: float,
    stream: TextIO | None = None,
) -> None:
    """Write a record now and every ``interval`` seconds until cancelled."""
    out = stream or sys.stdout
    while True:
        out.write(
            emf_line(namespace, dimensions, in_flight(), timestamp_ms=int(time.time() * 1000))
        )
        out.write("\n")
        out.flush()
        await asyncio.sleep(interval)
