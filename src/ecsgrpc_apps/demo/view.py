"""The demo's live terminal view (rich): phase, traffic per agent, endpoint states."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ecsgrpc_apps.demo.run import DemoState, DemoSummary
from ecsgrpc_apps.local.states import TaskState

__all__ = ["describe_trace", "render", "render_summary"]

_LEAVING = (TaskState.DEACTIVATING, TaskState.STOPPING)


def render(state: DemoState) -> Group:
    """One frame of the live view."""
    header = Text.assemble(
        ("ecsgrpc demo ", "bold"),
        (state.url or "starting...", "cyan"),
        "  ",
        (state.phase, "yellow"),
    )
    parts: list[object] = [header, ProgressBar(total=1.0, completed=state.progress, width=60)]
    parts.append(_traffic_line(state))
    parts.append(_endpoints(state))
    parts.append(Panel("\n".join(state.events[-8:]) or "-", title="task events", expand=False))
    return Group(*parts)  # type: ignore[arg-type]


def _traffic_line(state: DemoState) -> Text:
    traffic = state.traffic
    if traffic is None:
        return Text("no traffic yet")
    errors = traffic.errors
    return Text.assemble(
        f"requests {len(traffic.outcomes)}  ",
        (f"errors {errors}", "bold red" if errors else "green"),
    )


def _endpoints(state: DemoState) -> Table:
    table = Table(title="agents (as the gateway's balanced channel sees them)", expand=False)
    for column in ("task", "address", "zone", "state", "health", "in flight", "served"):
        table.add_column(column)
    served: Counter[str] = state.traffic.served_by() if state.traffic else Counter()
    all_tasks = state.runner.all_tasks if state.runner else []
    tasks = {t.address: t for t in all_tasks}
    statuses = state.client.channel.endpoints() if state.client else ()
    for status in statuses:
        task = tasks.get(status.address)
        task_id = task.task_id if task else (status.instance_id or "?")
        crashed = task is not None and task.exited_by_itself
        draining = status.draining and not crashed
        style = "green" if status.pickable else ("yellow" if draining else "red")
        label = status.state + (" (draining)" if draining else "") + (" (died)" if crashed else "")
        table.add_row(
            task_id[:8],
            status.address,
            status.zone or "-",
            Text(label, style=style),
            status.health,
            str(status.in_flight),
            str(served.get(task_id, 0)),
        )
    # Tasks on their way out that discovery no longer lists: still finishing calls.
    listed = {status.address for status in statuses}
    for task in all_tasks:
        if task.address in listed or task.state not in _LEAVING or task.exited_by_itself:
            continue
        table.add_row(
            task.task_id[:8],
            task.address,
            task.zone or "-",
            Text("draining (deregistered, finishing its calls)", style="yellow"),
            "-",
            "-",
            str(served.get(task.task_id, 0)),
        )
    return table


def describe_trace(trace: dict[str, Any]) -> str:
    """One line per span, indented by depth: service, name, duration, attempts."""
    depth: dict[str | None, int] = {}
    lines = []
    for span in trace["spans"]:
        level = depth.get(span["parent_span_id"], -1) + 1
        depth[span["span_id"]] = level
        line = f"{'  ' * level}{span['service']}: {span['name']} ({span['duration_ms']:.1f} ms)"
        for event in span["events"]:
            attrs = event["attributes"]
            if event["name"] == "attempt":
                line += f"; attempt {attrs.get('ecsgrpc.attempt')} -> {attrs.get('server.address')}"
                line += f":{attrs.get('server.port')}"
                if "ecsgrpc.retry.reason" in attrs:
                    line += f" (retry after {attrs['ecsgrpc.retry.reason']})"
        lines.append(line)
    return "\n".join(lines)


def render_summary(summary: DemoSummary) -> Group:
    table = Table(title="demo summary", show_header=False)
    table.add_row("requests", str(summary.requests))
    table.add_row("errors", Text(str(summary.errors), style="red" if summary.errors else "green"))
    for agent, count in summary.served_by.items():
        share = count / max(summary.requests, 1)
        table.add_row(f"served by {agent}", f"{count} ({share:.0%})")
    for agent, seconds in summary.traffic_left_seconds.items():
        table.add_row(
            f"traffic to {agent} after its stop",
            "none" if seconds is None else f"last new request {seconds:.3f} s later",
        )
    for sample in summary.error_samples:
        table.add_row("error", sample)
    table.add_row(
        "restarted (agent died mid-stream; redone elsewhere, client told)", str(summary.restarted)
    )
    table.add_row("duration", f"{summary.duration_seconds:.0f} s")
    if summary.trace is None:
        return Group(table)
    title = f"one conversation's trace ({summary.trace['trace_id']})"
    return Group(table, Panel(describe_trace(summary.trace), title=title, expand=False))
