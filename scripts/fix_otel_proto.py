"""Put opentelemetry-proto's own files back after xds-protos overwrote them.

xds-protos (the ``xds`` extra) carries an old copy of ``opentelemetry/proto``
(without ``InstrumentationScope``) at the same paths as opentelemetry-proto
(the ``otel`` extra). Whichever pip installs last wins; with the old copy the
OTLP exporter fails to import. This reinstalls the installed opentelemetry-proto
version without dependencies, so both extras work together. A no-op when
either package is absent. Usage: ``python scripts/fix_otel_proto.py``.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version


def main() -> int:
    try:
        otel = version("opentelemetry-proto")
        version("xds-protos")
    except PackageNotFoundError:
        return 0
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps"]
    return subprocess.call([*cmd, f"opentelemetry-proto=={otel}"])


if __name__ == "__main__":
    raise SystemExit(main())
