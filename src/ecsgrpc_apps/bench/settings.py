"""How long and how hard each scenario runs (``--quick`` and the hidden time scale)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ecsgrpc_apps.bench.contenders import Contender
    from ecsgrpc_apps.local.emulator import AwsEmulator

__all__ = ["BenchSettings", "Context", "default_servers"]


@dataclass(frozen=True)
class BenchSettings:
    """Durations in seconds, already multiplied by ``scale``; ``rate``: calls/s in total."""

    quick: bool
    scale: float
    overhead_seconds: float
    overhead_rounds: int
    rate: float
    kill_seconds: float
    kill_at: float
    settle_seconds: float
    scaleout_window: float
    cloudmap_poll: float
    slow_seconds: float
    outage_seconds: float
    scale_rounds: int
    client_bound_servers: int = 2
    client_bound_calls: int = 3000  # unary calls per round (streams: a tenth)
    client_bound_rounds: int = 15
    client_bound_per_worker: int = 4  # calls per worker and round, at least
    silent_at: float = 5.0
    silent_seconds: float = 15.0
    silent_tail: float = 10.0
    scale_sizes: tuple[int, ...] = (10, 100, 1000)

    @classmethod
    def make(cls, *, quick: bool, scale: float = 1.0, servers: int | None = None) -> BenchSettings:
        """The full run's settings, or ``--quick``'s; every duration times ``scale``.

        ``servers``: agent processes of the client_bound scenario (default:
        :func:`default_servers`).
        """

        def s(full: float, short: float, floor: float = 0.2) -> float:
            return max(floor, (short if quick else full) * scale)

        return cls(
            quick=quick,
            scale=scale,
            overhead_seconds=s(2.0, 0.7, 0.1),
            overhead_rounds=5 if not quick else (2 if scale >= 0.5 else 1),
            rate=300.0,
            kill_seconds=s(20.0, 8.0, 1.5),
            kill_at=s(5.0, 2.0, 0.5),
            settle_seconds=s(4.0, 2.0, 0.5),
            scaleout_window=s(15.0, 5.0, 2.5),
            cloudmap_poll=1.0 if quick else 5.0,
            slow_seconds=s(15.0, 5.0, 1.0),
            outage_seconds=s(30.0, 8.0, 1.5),
            scale_rounds=30 if not quick else max(3, int(10 * scale)),
            client_bound_servers=default_servers() if servers is None else servers,
            client_bound_calls=max(40, int((300 if quick else 3000) * scale)),
            client_bound_rounds=15 if not quick else (3 if scale >= 0.5 else 2),
            client_bound_per_worker=1 if quick else 4,
            silent_at=s(5.0, 2.0, 1.5),
            silent_seconds=s(15.0, 5.0, 1.0),
            silent_tail=s(10.0, 5.0, 1.0),
        )


def default_servers() -> int:
    """client_bound's servers: half the cores this process may use, from 2 to 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 2
    return max(2, min(8, cores // 2))


@dataclass
class Context:
    """What a scenario gets: settings, the contenders to run, progress, the emulator."""

    settings: BenchSettings
    contenders: Sequence[Contender]
    skipped: dict[str, str]  # contender -> reason (e.g. dnsmasq not installed)
    progress: Callable[[str], None]
    emulator: Callable[[], AwsEmulator]
    _services: list[str] = field(default_factory=list)

    def service_name(self, scenario: str) -> str:
        """A Cloud Map service name of its own (moto's state is global to the process)."""
        name = f"bench-{scenario}-{len(self._services)}"
        self._services.append(name)
        return name
