"""The run directory's ``tasks.json``: every task's address, state and log file.

A demo or a person can read it while the stack runs. Writes happen in a
thread (never on the event loop), coalesced: only the latest content is written.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecsgrpc_apps.local.task import TaskInfo

__all__ = ["ManifestWriter", "read_manifest"]


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_manifest(path: Path) -> dict[str, Any]:
    """Parse a ``tasks.json`` (blocking; for tools and tests)."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data


class ManifestWriter:
    """Keeps ``path`` up to date with the latest :meth:`update`; use from one event loop."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self._header = header
        self._latest: str | None = None
        self._flusher: asyncio.Task[None] | None = None

    def update(self, tasks: Sequence[TaskInfo]) -> None:
        """Schedule a write of ``tasks``; returns at once."""
        doc = {**self._header, "tasks": [t.to_json() for t in tasks]}
        self._latest = json.dumps(doc, indent=2)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._latest is not None:
            text, self._latest = self._latest, None
            await asyncio.to_thread(_write_atomically, self.path, text)

    async def flush(self) -> None:
        """Wait until the latest content is on disk."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
