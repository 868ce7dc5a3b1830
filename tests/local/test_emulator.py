"""The AWS emulator (moto's server, in this process): each new one starts empty."""

from __future__ import annotations

import pytest

from ecsgrpc_apps.local.emulator import AwsEmulator


@pytest.mark.timeout(60)
def test_a_new_emulator_does_not_serve_an_earlier_ones_instances() -> None:
    # moto keeps resources per process: without the reset at a first start, a
    # second emulator served the first one's namespace and instances, and a
    # gateway pointed at it called agents of an earlier test (CI, 2026-11-30).
    with AwsEmulator() as first:
        service = first.provision_cloudmap()
        first.register_instance(service, "old-task", {"AWS_INSTANCE_IPV4": "127.0.13.1"})
        assert first.client("servicediscovery").list_namespaces()["Namespaces"]
    with AwsEmulator() as second:
        assert second.client("servicediscovery").list_namespaces()["Namespaces"] == []


@pytest.mark.timeout(60)
def test_a_restarted_emulator_keeps_its_state() -> None:
    emulator = AwsEmulator()
    emulator.start()
    try:
        service = emulator.provision_cloudmap()
        emulator.register_instance(service, "task-1", {"AWS_INSTANCE_IPV4": "127.0.13.2"})
        emulator.stop()
        emulator.start()
        sd = emulator.client("servicediscovery")
        found = sd.list_instances(ServiceId=service.service_id)["Instances"]
        assert [i["Id"] for i in found] == ["task-1"]
    finally:
        emulator.stop()
