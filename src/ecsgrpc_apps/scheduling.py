"""The Linux CPU scheduling policy of a process that serves with grpc.aio.

A grpc.aio process has several threads that take turns on one conversation:
gRPC's event-engine threads read the sockets, grpc.aio's poller thread hands
each completion to the event loop, and the event loop runs the Python code.
Under Linux's normal policy (``SCHED_OTHER``) a thread that wakes up preempts
the one running, so each message from an agent interrupts the event loop
two or three times, and the event loop handles one event per wake: measured
on the gateway, about 15-19 involuntary context switches per conversation.

``SCHED_BATCH`` keeps the same CPU share (nice value, cgroup quota) but a
woken batch thread does not preempt a running one: it runs when the running
thread waits (the event loop in ``epoll_wait``) or its time slice ends. The
event loop then finds several events at each wake. Measured on the gateway:
2-3 involuntary switches per conversation instead of 20-26, and about a
fifth less CPU per conversation (docs/gateway.md, "CPU scheduling"). The
cost is latency while the CPU is busy: a woken thread waits until the
running one sleeps or its time slice ends (a few milliseconds at most),
whether the running one is this process's event loop or another process
on the same CPU.

Any process may move itself from ``SCHED_OTHER`` to ``SCHED_BATCH`` (no
capability is needed). Threads inherit the policy of the thread that creates
them; :func:`apply_cpu_policy` also sets it on every thread already running.
"""

from __future__ import annotations

import os

__all__ = ["CPU_POLICIES", "apply_cpu_policy", "thread_policies"]

#: The policies a setting may name, and their ``os`` constants' names.
CPU_POLICIES = {"batch": "SCHED_BATCH", "normal": "SCHED_OTHER"}


def _tids() -> list[int]:
    """This process's threads, the main one first (a refusal then changes nothing)."""
    try:
        others = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return [0]  # no /proc: the calling thread only
    main = os.getpid()
    return [main] + [tid for tid in others if tid != main]


def apply_cpu_policy(policy: str) -> str:
    """Put every thread of this process (and so every later one) under ``policy``.

    ``policy`` is a key of :data:`CPU_POLICIES`. Returns what was done, for the
    start's log line: ``"batch"``, ``"normal"``, or ``"normal (...why)"`` when
    the system cannot (not Linux, or the kernel refused). Never raises for
    that: the process runs as it would have. Raises ValueError for an
    unknown ``policy``.
    """
    if policy not in CPU_POLICIES:
        raise ValueError(f"unknown CPU policy {policy!r} (one of {', '.join(CPU_POLICIES)})")
    constant = getattr(os, CPU_POLICIES[policy], None)
    setter = getattr(os, "sched_setscheduler", None)
    if constant is None or setter is None:
        return f"normal ({CPU_POLICIES[policy]} is not available on this system)"
    param = os.sched_param(0)
    for tid in _tids():
        try:
            setter(tid, constant, param)
        except ProcessLookupError:
            continue  # the thread ended meanwhile
        except OSError as exc:
            return f"normal (the kernel refused {CPU_POLICIES[policy]}: {exc.strerror})"
    return policy


def thread_policies(pid: int) -> dict[int, int]:
    """Each thread of process ``pid`` and its scheduling policy (``os.SCHED_*``)."""
    policies: dict[int, int] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            policies[int(tid)] = os.sched_getscheduler(int(tid))
        except ProcessLookupError:
            continue
    return policies
