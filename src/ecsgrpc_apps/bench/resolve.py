"""Benchmark (not a test): a 1,000-instance Cloud Map answer -> snapshot -> diff.

1,000 instances is Cloud Map's per-service maximum. Each round turns a
``DiscoverInstances`` answer (as botocore returns it, a dict) into an
``EndpointSet`` and diffs it against the previous round's snapshot, where 10
instances left, 10 arrived and 10 changed health. The JSON decoding of the
HTTP body is timed separately (botocore does it, not ecsgrpc).

Run: ``python -m ecsgrpc_apps.bench.resolve [--rounds N] [--json]``. Target: < 20 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from ecsgrpc.endpoints import EndpointSet
from ecsgrpc.resolvers.cloudmap import canonical_ip, endpoints_from_instances

TARGET_MS = 20.0


def answer(n: int = 1000, *, offset: int = 0, unhealthy: int = 0) -> dict[str, Any]:
    instances = []
    for i in range(offset, offset + n):
        instances.append(
            {
                "InstanceId": f"{i:032x}",
                "NamespaceName": "workflow.local",
                "ServiceName": "workflow-agent",
                "HealthStatus": "UNHEALTHY" if i < offset + unhealthy else "HEALTHY",
                "Attributes": {
                    "AWS_INSTANCE_IPV4": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
                    "AWS_INSTANCE_PORT": "50051",
                    "AVAILABILITY_ZONE": f"us-east-1{'abc'[i % 3]}",
                    "ECS_CLUSTER_NAME": "workflow",
                    "ECS_SERVICE_NAME": "workflow-agent",
                    "ECS_TASK_DEFINITION_FAMILY": "workflow-agent",
                    "REGION": "us-east-1",
                },
            }
        )
    return {"Instances": instances, "InstancesRevision": n}


def snapshot_of(doc: dict[str, Any]) -> EndpointSet:
    endpoints = endpoints_from_instances(doc["Instances"], default_port=None, skip=_no_skip)
    return EndpointSet.of(endpoints, source="cloudmap", ttl=5.0)


def _no_skip(reason: str, detail: str) -> None:
    raise AssertionError(f"unexpected skip {reason}: {detail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()

    previous = snapshot_of(answer(1000))
    current_doc = answer(1000, offset=10, unhealthy=10)  # 10 gone, 10 new, 10 changed
    body = json.dumps(current_doc)
    # A cold round first: no address seen before (the cache of parsed IPs is empty).
    canonical_ip.cache_clear()
    t0 = time.perf_counter()
    cold = snapshot_of(json.loads(body))
    previous.diff(cold)
    cold_ms = (time.perf_counter() - t0) * 1000
    decode_ms, build_ms, diff_ms, total_ms = [], [], [], []
    changes = (0, 0, 0)
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        doc = json.loads(body)
        t1 = time.perf_counter()
        snapshot = snapshot_of(doc)
        t2 = time.perf_counter()
        added, removed, changed = previous.diff(snapshot)
        same = snapshot == previous
        t3 = time.perf_counter()
        assert not same
        changes = (len(added), len(removed), len(changed))
        decode_ms.append((t1 - t0) * 1000)
        build_ms.append((t2 - t1) * 1000)
        diff_ms.append((t3 - t2) * 1000)
        total_ms.append((t3 - t1) * 1000)

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "median_ms": round(statistics.median(ordered), 3),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
            "min_ms": round(ordered[0], 3),
        }

    stages = {
        "json_decode": summary(decode_ms),
        "snapshot": summary(build_ms),
        "diff": summary(diff_ms),
        "snapshot_plus_diff": summary(total_ms),
    }
    meets = stages["snapshot_plus_diff"]["median_ms"] < TARGET_MS
    if args.json:
        doc = {
            "instances": 1000,
            "rounds": args.rounds,
            "changes": dict(zip(("added", "removed", "changed"), changes, strict=True)),
            **stages,
            "cold_round_ms": round(cold_ms, 3),
            "target_ms": TARGET_MS,
            "meets_target": meets,
        }
        print(json.dumps(doc, indent=2))
        return
    print(
        f"1,000-instance Cloud Map answer, {args.rounds} rounds;"
        f" diff +{changes[0]} -{changes[1]} ~{changes[2]}"
    )
    for key, s in stages.items():
        print(
            f"  {key:<20} median {s['median_ms']:7.3f} ms"
            f"  p95 {s['p95_ms']:7.3f} ms  min {s['min_ms']:7.3f} ms"
        )
    print(f"  cold round (decode + snapshot + diff, no cached addresses) {cold_ms:.3f} ms")
    verdict = "meets" if meets else "MISSES"
    print(f"  snapshot + diff {verdict} the {TARGET_MS:g} ms target")


if __name__ == "__main__":
    main()
