"""The caller's availability zone: a setting, or the ECS task metadata endpoint."""

from __future__ import annotations

import json
import logging
import os

import aiohttp

__all__ = ["detect_zone"]

log = logging.getLogger(__name__)


async def detect_zone(timeout: float = 1.0) -> str | None:
    """``AvailabilityZone`` of this ECS task (metadata endpoint v4), else None.

    Reads ``ECS_CONTAINER_METADATA_URI_V4`` (set by ECS on every task); any
    error is logged and gives None: zone preference is an optimisation.
    """
    base = os.environ.get("ECS_CONTAINER_METADATA_URI_V4")
    if not base:
        return None
    url = base.rstrip("/") + "/task"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url) as response,
        ):
            response.raise_for_status()
            document = json.loads(await response.text())
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.warning("could not read the task's zone from %s: %s", url, exc)
        return None
    zone = document.get("AvailabilityZone") if isinstance(document, dict) else None
    return zone if isinstance(zone, str) and zone else None
