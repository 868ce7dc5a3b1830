"""``ecsgrpc demo``: the whole system on one machine, under load, through a deploy and a crash."""

from ecsgrpc_apps.demo.run import DemoOptions, DemoSummary, run_demo

__all__ = ["DemoOptions", "DemoSummary", "run_demo"]
