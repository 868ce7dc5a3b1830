"""A ``grpc_health_probe`` drop-in, usable as an ECS container ``healthCheck``.

Exit codes follow grpc_health_probe: 0 serving, 1 invalid arguments,
2 connection failure (including timeout), 3 RPC failure, 4 not serving.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecsgrpc.errors import ConfigError
from ecsgrpc.targets_util import parse_host_port

__all__ = ["ProbeResult", "ProbeStatus", "probe"]


class ProbeStatus(enum.IntEnum):
    SERVING = 0
    INVALID_ARGUMENTS = 1
    CONNECTION_FAILURE = 2
    RPC_FAILURE = 3
    NOT_SERVING = 4


@dataclass(frozen=True, slots=True)
class ProbeResult:
    status: ProbeStatus
    message: str


def probe(address: str, *, service: str = "", timeout: float = 1.0) -> ProbeResult:
    """Check ``address`` once (blocking; meant for the CLI, not for event loops)."""
    if timeout <= 0:
        return ProbeResult(ProbeStatus.INVALID_ARGUMENTS, f"--timeout must be > 0, got {timeout}")
    try:
        host, port = parse_host_port(address)
    except ConfigError as exc:
        return ProbeResult(ProbeStatus.INVALID_ARGUMENTS, str(exc))
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with grpc.insecure_channel(target, options=[("grpc.enable_retries", 0)]) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            return ProbeResult(
                ProbeStatus.CONNECTION_FAILURE,
                f"timeout: failed to connect to {target} within {timeout:g}s",
            )
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            return _rpc_failure(exc, target, timeout)
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status == health_pb2.HealthCheckResponse.SERVING:
        return ProbeResult(ProbeStatus.SERVING, "status: SERVING")
    return ProbeResult(ProbeStatus.NOT_SERVING, f"service unhealthy (responded with {name!r})")


def _rpc_failure(exc: grpc.RpcError, target: str, timeout: float) -> ProbeResult:
    code = exc.code()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return ProbeResult(
            ProbeStatus.CONNECTION_FAILURE,
            f"health rpc to {target} failed: {code.name} {exc.details() or ''} "
            f"(timeout {timeout:g}s)".strip(),
        )
    return ProbeResult(
        ProbeStatus.RPC_FAILURE, f"health rpc to {target} failed: {code.name} {exc.details()}"
    )
