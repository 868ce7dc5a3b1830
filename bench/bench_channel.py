"""Issue 4's overhead benchmark, now a scenario of ``ecsgrpc bench``.

Run: ``.venv/bin/python bench/bench_channel.py`` (= ``ecsgrpc bench --only overhead``);
extra arguments are passed on (e.g. ``--quick``, ``--json out.json``).
"""

from __future__ import annotations

import sys

from ecsgrpc.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--only", "overhead", *sys.argv[1:]]))
