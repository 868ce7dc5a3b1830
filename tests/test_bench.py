"""``ecsgrpc bench --quick`` at a tiny time scale: every scenario and contender reports numbers.

The values are not checked (the machine is noisy and the durations tiny);
their presence and shape are: each scenario, each contender (or the reason
it was skipped), numeric metrics, evaluated targets, and the plots.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from ecsgrpc.errors import ConfigError
from ecsgrpc_apps.bench.contenders import CONTENDERS
from ecsgrpc_apps.bench.report import table
from ecsgrpc_apps.bench.results import Row, ScenarioResult
from ecsgrpc_apps.bench.runner import SCENARIOS, parse_only
from ecsgrpc_apps.local.dnsmasq import dnsmasq_available

# Metrics that may hold a word instead of a number, and which words.
_WORDS = {
    "seconds_to_reroute": {"never"},
    "seconds_to_first_call": {"never"},
    "last_to_agent_s": {"never"},
    "back_after_s": {"never", "n/a"},  # n/a: the unreachable case (never recovers)
    "refused_p99_ms": {"none"},  # gateway_overload: a step that refused nothing
    "failed_late": {"n/a"},
    "failed_after_recovery": {"n/a"},
}
_TEXT = {"errors"}  # a summary like "UNAVAILABLE x3"
# Scenarios that run a subset of the contenders.
_SUBSETS = {
    "client_scale": {"ecsgrpc_round_robin", "ecsgrpc_least_request"},  # only ecsgrpc picks
    "client_bound": {
        "native_round_robin",
        "native_round_robin_aa",  # the A/A control
        "ecsgrpc_round_robin",
        "ecsgrpc_least_request",
    },
    "xds_fleet": {"native_xds"},  # the xDS control plane's own fleet-scale numbers
}
_EXTRA = {"silent_failure": {"native_keepalive_round_robin"}}  # contenders of one scenario
_GATEWAY_ONLY = {"gateway_overload"}  # the HTTP gateway, not the gRPC clients


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@pytest.mark.timeout(240)  # gateway_overload adds about 25 s to the quick run
def test_quick_bench_reports_every_scenario_and_contender_with_numbers(tmp_path: Path) -> None:
    out, plots = tmp_path / "bench.json", tmp_path / "plots"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ecsgrpc",
            "bench",
            "--quick",
            "--seconds-scale",
            "0.1",
            "--json",
            str(out),
            "--plots",
            str(plots),
        ],
        capture_output=True,
        text=True,
        timeout=230,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "### Targets:" in proc.stdout
    doc = json.loads(out.read_text())
    assert list(doc["scenarios"]) == list(SCENARIOS)
    expected = {c.name for c in CONTENDERS}
    for name, scenario in doc["scenarios"].items():
        rows = scenario["rows"]
        assert rows, name
        seen = {r["contender"] for r in rows}
        if name in _SUBSETS:
            assert seen == _SUBSETS[name], name
        elif name in _GATEWAY_ONLY:
            assert seen == {"gateway"}, name
        else:
            assert seen == expected | _EXTRA.get(name, set()), (name, seen)
        for row in rows:
            if "skipped" in row:
                assert row["skipped"] == "dnsmasq not installed"
                assert not dnsmasq_available()
                continue
            for column in scenario["columns"]:
                value = row[column]
                if column in _WORDS and isinstance(value, str):
                    assert value in _WORDS[column], (name, row["contender"], column, value)
                elif column not in _TEXT:
                    assert _is_number(value), (name, row["contender"], column, value)
        for target in scenario["targets"]:
            assert isinstance(target["met"], bool)
            assert target["value"] is None or _is_number(target["value"])
    # gateway_overload judges each of its steps against the closed loops around it.
    overload = doc["scenarios"]["gateway_overload"]["params"]
    loops = overload["closed_loops_rps"]
    assert list(loops) == ["S", "before 1.5x", "before 2x", "after the steps"]
    assert all(_is_number(rps) and rps > 0 for rps in loops.values()), loops
    assert overload["target_base_rps"] == {
        "1.5x": max(loops["before 1.5x"], loops["before 2x"]),
        "2x": max(loops["before 2x"], loops["after the steps"]),
    }
    # ... and whether it is back to normal after the load dropped from 2x to 0.5x.
    scenario = doc["scenarios"]["gateway_overload"]
    assert [r["case"] for r in scenario["rows"]] == ["0.5x", "1x", "1.5x", "2x", "after 2x"]
    assert overload["recovery_first_seconds"]["seconds"] == 5.0
    judged = {(t["case"], t["metric"]) for t in scenario["targets"]}
    assert {("after 2x", m) for m in ("not_200", "p50_ms", "p99_ms", "rss_mb")} <= judged
    for row in scenario["rows"]:
        if row["refused_503"]:  # a step that refused is judged on how fast it refused
            assert _is_number(row["refused_p99_ms"]), row
            assert (row["case"], "refused_p99_ms") in judged or row["case"] not in (
                "1.5x",
                "2x",
            )
    assert doc["targets_total"] == len(doc["targets"]) > 0
    assert {t["scenario"] for t in doc["targets"]} == set(SCENARIOS)
    for png in (
        "overhead_throughput",
        "overhead_latency",
        "task_killed_timeline",
        "rolling_deploy_timeline",
        "scale_out_timeline",
        "slow_task",
        "client_scale",
        "silent_failure_freeze_timeline",
        "gateway_overload",
    ):
        assert (plots / f"{png}.png").stat().st_size > 1000, png


def test_only_names_its_unknown_scenario() -> None:
    assert parse_only("client_scale,overhead") == ("overhead", "client_scale")
    with pytest.raises(ConfigError, match="'overheat'"):
        parse_only("overhead,overheat")


@pytest.mark.timeout(30)
def test_cli_rejects_a_bad_scenario_without_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ecsgrpc", "bench", "--only", "nope"],
        capture_output=True,
        text=True,
        timeout=25,
    )
    assert proc.returncode == 2
    assert "'nope'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.timeout(30)
def test_cli_rejects_a_bad_server_count_without_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ecsgrpc", "bench", "--only", "client_bound", "--servers", "0"],
        capture_output=True,
        text=True,
        timeout=25,
    )
    assert proc.returncode == 2
    assert "--servers" in proc.stderr and "0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_client_bound_gives_the_client_a_core_and_the_servers_the_others() -> None:
    from ecsgrpc_apps.bench.client_bound import placement

    assert placement(8, list(range(16))) == ({0}, [{1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}])
    assert placement(3, [0, 1]) == ({0}, [{1}, {1}, {1}])
    assert placement(2, [5]) == (None, [None, None])


def test_a_table_keeps_the_cases_in_the_order_they_ran_each_together() -> None:
    result = ScenarioResult("s", "t", ("n",))
    for case, contender, n in [
        ("0.5x", "a", 1),
        ("1x", "a", 2),
        ("1.5x", "a", 3),
        ("1x", "b", 4),  # a second contender of an earlier case joins its case
        ("2x", "a", 5),
    ]:
        result.rows.append(Row(contender, {"n": n}, case=case))
    lines = table(result).splitlines()[2:]
    assert [line.split(" | ")[0].lstrip("| ") for line in lines] == [
        "0.5x",
        "1x",
        "1x",
        "1.5x",
        "2x",
    ]
    assert [int(line.split(" | ")[2].rstrip(" |")) for line in lines] == [1, 2, 4, 3, 5]
