"""The caller's availability zone: a setting, or the ECS task metadata endpoint."""

from __future__ import annotations

import asyncio
import json
import logging
import os

__all__ = ["detect_zone"]

log = logging.getLogger(__name__)
_MAX_DOCUMENT_BYTES = 1 << 20


async def detect_zone(timeout: float = 1.0) -> str | None:
    """``AvailabilityZone`` of this ECS task (metadata endpoint v4), else None.

    Reads ``ECS_CONTAINER_METADATA_URI_V4`` (set by ECS on every task); any
    error is logged and gives None: zone preference is an optimisation. The
    HTTP GET runs in a worker thread (standard library; no HTTP client
    dependency for one local request).
    """
    base = os.environ.get("ECS_CONTAINER_METADATA_URI_V4")
    if not base:
        return None
    url = base.rstrip("/") + "/task"
    if not url.startswith(("http://", "https://")):
        log.warning("ECS_CONTAINER_METADATA_URI_V4=%r is not an http(s) URL", base)
        return None
    try:
        document = await asyncio.to_thread(_get_json, url, timeout)
    except (OSError, ValueError) as exc:  # urllib's URLError is an OSError
        log.warning("could not read the task's zone from %s: %s", url, exc)
        return None
    zone = document.get("AvailabilityZone") if isinstance(document, dict) else None
    return zone if isinstance(zone, str) and zone else None


def _get_json(url: str, timeout: float) -> object:
    import urllib.request  # only inside ECS, and only once per channel

    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (checked above)
        return json.loads(response.read(_MAX_DOCUMENT_BYTES))
