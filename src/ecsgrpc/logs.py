"""Logging setup: plain or one-JSON-object-per-line, always with the instance id.

Library modules only call ``logging.getLogger(__name__)``; the CLI decides the
format. JSON lines suit CloudWatch Logs Insights (awslogs driver).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["configure_logging"]

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class _JsonFormatter(logging.Formatter):
    def __init__(self, instance_id: str) -> None:
        super().__init__()
        self._instance_id = instance_id

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "instance_id": self._instance_id,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                doc[key] = value if isinstance(value, int | float | str | bool) else str(value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


class _InstanceFilter(logging.Filter):
    def __init__(self, instance_id: str) -> None:
        super().__init__()
        self._instance_id = instance_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.instance = self._instance_id
        return True


def configure_logging(*, instance_id: str, json_lines: bool = False, level: str = "INFO") -> None:
    """Route the root logger to stderr in the chosen format (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(_JsonFormatter(instance_id))
    else:
        handler.addFilter(_InstanceFilter(instance_id))
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(instance)s] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
