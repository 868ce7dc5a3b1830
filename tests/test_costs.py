"""The cost measurement (``ecsgrpc bench --costs``) measures each child, not its parent."""

from __future__ import annotations

import subprocess
import sys

from ecsgrpc_apps.bench import costs


def test_a_childs_resident_set_is_its_own_not_the_measuring_process() -> None:
    """A child's ru_maxrss starts at its forking parent's resident set (Linux keeps
    the high-water mark across exec): the launcher keeps it out of the numbers."""
    ballast = bytearray(300 * 2**20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1  # resident, not just reserved
    launcher = costs._Launcher(sys.executable)
    try:
        sample = launcher.run([sys.executable, "-c", "pass"])
    finally:
        launcher.close()
    assert sample.code == 0
    assert sample.rss_mb < 40, f"{sample.rss_mb:.0f} MB for an empty interpreter"
    assert sample.cpu > 0 and sample.wall >= sample.cpu / 2
    del ballast


def test_one_round_gives_every_case_against_import_grpc() -> None:
    run = costs.measure(runs=1)
    by_name = {c.name: c for c in run.costs}
    assert set(by_name) == {
        "python (empty)",
        "import grpc",
        "floor: grpc.aio + health stubs + prometheus",
        "connect static",
        "connect dns",
        "ecsgrpc probe",
    }
    assert by_name["import grpc"].ratio == 1.0 and by_name["import grpc"].cpu_ratio == 1.0
    # grpc's own extension modules are far above an empty interpreter's resident set.
    assert by_name["import grpc"].max_rss_mb > by_name["python (empty)"].max_rss_mb + 10
    assert run.load_before >= 0 and run.load_after >= 0
    assert "within 2x" in costs.table(run.costs)


def test_bad_options_are_one_line_naming_the_flag() -> None:
    for argv, flag in ((["--nice", "30"], "--nice"), (["--runs", "0"], "--runs")):
        result = subprocess.run(
            [sys.executable, "-m", "ecsgrpc_apps.bench.costs", *argv],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2
        assert flag in result.stderr.splitlines()[-1]
        assert "Traceback" not in result.stderr
