"""The demo's script: stack up, steady load, rolling deploy, a crash, summary.

Everything runs on this machine: the embedded Cloud Map (moto), three agent
tasks on 127.0.0.2-4 registered ECS-style, the gateway on 127.0.0.1:8080 (or a
free port) discovering them through ``cloudmap://``, and conversations driven
through the gateway's HTTP API with every reply checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from ecsgrpc.metrics import gateway_metrics
from ecsgrpc_apps.demo.tracing import demo_tracing, pick_trace
from ecsgrpc_apps.demo.traffic import Traffic
from ecsgrpc_apps.gateway import (
    GatewayServer,
    GatewaySettings,
    Lifecycle,
    create_app,
    uvicorn_config,
)
from ecsgrpc_apps.local.emulator import AwsEmulator
from ecsgrpc_apps.local.task import TaskDefinition, TaskEvent, TaskEventKind
from ecsgrpc_apps.local.tasks import TaskRunner
from ecsgrpc_apps.workflow.client import WorkflowClient

__all__ = ["DemoOptions", "DemoState", "DemoSummary", "run_demo"]

CLOUDMAP_POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    agents: int = 3
    workers: int = 6
    warmup_seconds: float = 7.0
    settle_seconds: float = 5.0
    after_kill_seconds: float = 7.0
    keep_running: bool = False
    run_dir: Path | None = None


@dataclass
class DemoState:
    """What the live view shows; updated by the script as it goes."""

    phase: str = "starting"
    progress: float = 0.0
    url: str = ""
    events: list[str] = field(default_factory=list)
    traffic: Traffic | None = None
    runner: TaskRunner | None = None
    client: WorkflowClient | None = None
    registry: CollectorRegistry | None = None
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class DemoSummary:
    requests: int
    errors: int
    served_by: dict[str, int]
    error_samples: list[str]
    # Per stopped task: how long after its stop it still got a new request
    # (None: it got none).
    traffic_left_seconds: dict[str, float | None]
    restarted: int
    duration_seconds: float
    gateway_url: str
    trace: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.requests > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "served_by": self.served_by,
            "error_samples": self.error_samples,
            "traffic_left_seconds": self.traffic_left_seconds,
            "restarted": self.restarted,
            "duration_seconds": round(self.duration_seconds, 1),
            "gateway_url": self.gateway_url,
            "trace": self.trace,
        }


def _free_port(host: str, wanted: int) -> int:
    """``wanted`` when it can be bound on ``host``, else any free port."""
    with socket.socket() as probe:
        try:
            probe.bind((host, wanted))
            return wanted
        except OSError:
            probe.bind((host, 0))
            return int(probe.getsockname()[1])


def _point_sdk_at(emulator: AwsEmulator) -> None:
    # This process talks only to the embedded emulator.
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_SERVICEDISCOVERY"):
        os.environ.pop(name, None)
    os.environ.update(emulator.env())


async def run_demo(
    options: DemoOptions, *, on_update: Callable[[DemoState], None] | None = None
) -> DemoSummary:
    """Run the whole script and return its summary (never raises for a failed call)."""
    state = DemoState()
    notify = on_update or (lambda _s: None)
    stops: dict[str, float] = {}

    def on_event(event: TaskEvent) -> None:
        short = event.task.short_id
        what = event.kind.value
        if event.kind is TaskEventKind.DRAINING and event.task.exit_code is not None:
            what = "deregistered (its process had died: nothing to drain)"
        state.events.append(f"{time.monotonic() - state.started:5.1f}s {short} {what}")
        if event.kind in (TaskEventKind.DRAINING, TaskEventKind.KILLED):
            stops.setdefault(event.task.task_id, time.monotonic())
        notify(state)

    with contextlib.ExitStack() as stack:
        run_dir = options.run_dir
        if run_dir is None:  # removed at the end, whatever happens
            temporary = tempfile.TemporaryDirectory(
                prefix="ecsgrpc-demo-", ignore_cleanup_errors=True
            )
            run_dir = Path(stack.enter_context(temporary))
        emulator = stack.enter_context(AwsEmulator())
        _point_sdk_at(emulator)
        definition = TaskDefinition(
            drain_seconds=1.0, grace_seconds=5.0, stop_timeout=10.0, event_delay_seconds=0.01
        )
        # Every task gets an address no earlier task had (as awsvpc gives each a
        # new ENI), so a replacement never takes over a stopped task's address.
        runner = TaskRunner(
            emulator,
            definition=definition,
            run_dir=run_dir,
            replace_crashed=True,
            fresh_addresses=True,
        )
        state.runner = runner
        runner.add_listener(on_event)
        async with demo_tracing() as receiver, runner:
            state.phase = f"starting {options.agents} agent tasks"
            notify(state)
            await runner.start_tasks(options.agents)
            async with _gateway(options, runner) as (url, client, registry):
                state.url, state.client, state.registry = url, client, registry
                await client.channel.channel_ready(timeout=15, min_ready=options.agents)
                traffic = Traffic(url, workers=options.workers)
                state.traffic = traffic
                traffic.start()
                # The live view keeps counting whatever the script waits for.
                ticker = asyncio.create_task(_tick(state, notify))
                try:
                    await _script(options, runner, state, notify)
                finally:
                    ticker.cancel()
                    await traffic.stop()
                summary = _summarise(traffic, stops, state, url)
                if receiver is not None:
                    await asyncio.sleep(0.5)  # the agents' batch exporters (200 ms)
                    summary = dataclasses.replace(summary, trace=pick_trace(receiver))
                if options.keep_running:
                    state.phase = "keep-running: press Ctrl-C to stop"
                    notify(state)
                    await _wait_forever()
    return summary


async def _tick(state: DemoState, notify: Callable[[DemoState], None]) -> None:
    while True:
        await asyncio.sleep(0.25)
        notify(state)


async def _script(
    options: DemoOptions,
    runner: TaskRunner,
    state: DemoState,
    notify: Callable[[DemoState], None],
) -> None:
    async def phase(name: str, seconds: float, progress: float) -> None:
        state.phase = name
        state.progress = progress
        notify(state)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(0.25)
            notify(state)

    await phase("steady load over 3 agents", options.warmup_seconds, 0.1)
    state.phase, state.progress = "rolling deploy (start new, wait healthy, stop old)", 0.3
    notify(state)
    await runner.rolling_deploy()
    await phase("steady load after the deploy", options.settle_seconds, 0.6)
    victim = runner.tasks[0]
    state.phase, state.progress = f"SIGKILL task {victim.task_id[:8]} under load", 0.7
    notify(state)
    await runner.kill(victim)
    await phase(
        "steady load after the crash (ECS replaces the task)", options.after_kill_seconds, 0.8
    )
    state.phase, state.progress = "done", 1.0
    notify(state)


@contextlib.asynccontextmanager
async def _gateway(options: DemoOptions, runner: TaskRunner):  # type: ignore[no-untyped-def]
    registry = CollectorRegistry()
    port = _free_port(options.host, options.port)
    settings = GatewaySettings(
        host=options.host, port=port, drain_seconds=0.5, grace_seconds=5, access_log=False
    )
    target = f"cloudmap://{runner.namespace}/{runner.service_name}?poll={CLOUDMAP_POLL_SECONDS:g}"
    client = WorkflowClient(target, timeout=settings.request_timeout_seconds, registry=registry)
    lifecycle = Lifecycle(gateway_metrics(registry))
    app = create_app(client, settings, registry=registry, lifecycle=lifecycle)
    server = GatewayServer(
        uvicorn_config(app, settings), lifecycle=lifecycle, drain_seconds=0.5, install_signals=False
    )
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has no event)
        await asyncio.sleep(0.02)
    if serving.done():
        serving.result()
        raise RuntimeError(f"the gateway could not start on {options.host}:{port}")
    try:
        yield f"http://{server.addresses()[0]}", client, registry
    finally:
        server.should_exit = True
        await serving


def _summarise(
    traffic: Traffic, stops: dict[str, float], state: DemoState, url: str
) -> DemoSummary:
    outcomes = traffic.outcomes
    left: dict[str, float | None] = {}
    for task_id, stopped_at in stops.items():
        later = [o.started for o in outcomes if o.served_by == task_id and o.started >= stopped_at]
        left[task_id[:8]] = round(max(later) - stopped_at, 3) if later else None
    errors = [o for o in outcomes if o.error]
    return DemoSummary(
        requests=len(outcomes),
        errors=len(errors),
        served_by={k[:8]: v for k, v in sorted(traffic.served_by().items())},
        error_samples=[f"{o.mode}: {o.error}" for o in errors[:5]],
        traffic_left_seconds=left,
        restarted=_restarts(state.registry),
        duration_seconds=time.monotonic() - state.started,
        gateway_url=url,
    )


def _restarts(registry: CollectorRegistry | None) -> int:
    """Conversations the gateway restarted because their agent died mid-stream."""
    if registry is None:
        return 0
    total = 0.0
    for mode in ("json", "sse"):
        total += registry.get_sample_value("ecsgrpc_gateway_restarts_total", {"mode": mode}) or 0
    return int(total)


async def _wait_forever() -> None:
    """Until SIGINT or SIGTERM (the stack is then stopped cleanly)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
