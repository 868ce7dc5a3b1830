"""Runs the scenarios in order and collects their results.

Scenarios: ``overhead``, ``client_bound``, ``task_killed``, ``rolling_deploy``, ``scale_out``,
``slow_task``, ``discovery_outage``, ``client_scale``, ``silent_failure``. The DNS contender is
skipped (with the reason in its rows) when dnsmasq is not installed; the
embedded Cloud Map emulator is started only for the scenarios that need it.
A scenario that fails is recorded with its error and the others still run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from ecsgrpc.errors import ConfigError
from ecsgrpc_apps.bench import (
    client_bound,
    client_scale,
    gateway_overload,
    killed,
    outage,
    overhead,
    rolling,
    scaleout,
    silent,
    slow,
)
from ecsgrpc_apps.bench.contenders import CONTENDERS, Contender
from ecsgrpc_apps.bench.results import ScenarioResult
from ecsgrpc_apps.bench.settings import BenchSettings, Context
from ecsgrpc_apps.local.dnsmasq import dnsmasq_available
from ecsgrpc_apps.local.emulator import AwsEmulator

__all__ = ["SCENARIOS", "parse_only", "run_bench"]

log = logging.getLogger(__name__)

Scenario = Callable[[Context], Awaitable[ScenarioResult]]
SCENARIOS: dict[str, Scenario] = {
    "overhead": overhead.run,
    "client_bound": client_bound.run,
    "task_killed": killed.run,
    "rolling_deploy": rolling.run,
    "scale_out": scaleout.run,
    "slow_task": slow.run,
    "discovery_outage": outage.run,
    "client_scale": client_scale.run,
    "silent_failure": silent.run,
    "gateway_overload": gateway_overload.run,
}
DNSMASQ_MISSING = "dnsmasq not installed"


def parse_only(text: str | None) -> tuple[str, ...]:
    """``"overhead,slow_task"`` -> the scenarios, in the canonical order.

    Raises ConfigError naming an unknown scenario.
    """
    if not text:
        return tuple(SCENARIOS)
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [w for w in wanted if w not in SCENARIOS]
    if unknown or not wanted:
        raise ConfigError(
            f"unknown scenario {', '.join(map(repr, unknown)) or repr(text)} in --only; "
            f"choose from {', '.join(SCENARIOS)}"
        )
    return tuple(name for name in SCENARIOS if name in wanted)


def _contenders() -> tuple[list[Contender], dict[str, str]]:
    if dnsmasq_available():
        return list(CONTENDERS), {}
    kept = [c for c in CONTENDERS if not c.needs_dns]
    return kept, {c.name: DNSMASQ_MISSING for c in CONTENDERS if c.needs_dns}


class _LazyEmulator:
    def __init__(self) -> None:
        self.emulator: AwsEmulator | None = None

    def __call__(self) -> AwsEmulator:
        if self.emulator is None:
            self.emulator = AwsEmulator()
            self.emulator.start()
        return self.emulator

    def stop(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()


async def run_bench(
    settings: BenchSettings,
    *,
    only: Sequence[str] = tuple(SCENARIOS),
    progress: Callable[[str], None] = lambda _text: None,
    on_scenario: Callable[[str, int], None] = lambda _name, _index: None,
) -> list[ScenarioResult]:
    """Run the scenarios in ``only``; ``progress`` gets one-line status updates."""
    import asyncio

    contenders, skipped = _contenders()
    emulator = _LazyEmulator()
    ctx = Context(settings, contenders, skipped, progress, emulator)
    results = []
    try:
        for index, name in enumerate(only):
            on_scenario(name, index)
            started = time.monotonic()
            try:
                result = await SCENARIOS[name](ctx)
            except Exception as exc:
                log.exception("scenario %s failed", name)
                result = ScenarioResult(name, f"{name}: FAILED", ())
                result.notes.append(f"The scenario failed: {type(exc).__name__}: {exc}")
                result.params["error"] = f"{type(exc).__name__}: {exc}"
            result.seconds = time.monotonic() - started
            results.append(result)
    finally:
        await asyncio.to_thread(emulator.stop)
    return results
