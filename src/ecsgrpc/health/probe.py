"""A ``grpc_health_probe`` drop-in, usable as an ECS container ``healthCheck``.

Exit codes follow grpc_health_probe: 0 serving, 1 invalid arguments,
2 connection failure (including timeout and TLS handshake failures), 3 RPC
failure, 4 not serving.

TLS (``tls``) mirrors grpc_health_probe's ``-tls*`` flags. A connection that
fails for a TLS reason (handshake failed, certificate not trusted or expired,
a TLS/plaintext mismatch) ends the probe at once with a message naming the
likely cause, instead of waiting out the timeout.
"""

from __future__ import annotations

import enum
import queue
import time
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecsgrpc.errors import ConfigError
from ecsgrpc.security.client_tls import ClientTls
from ecsgrpc.security.diagnose import explain_connect_error, last_error
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


# How the probe's TLS flags are named in errors (ClientTls.names order).
PROBE_TLS_FLAGS = ("--tls-ca-cert", "--tls-client-cert", "--tls-client-key", "--tls-server-name")


def probe(
    address: str, *, service: str = "", timeout: float = 1.0, tls: ClientTls | None = None
) -> ProbeResult:
    """Check ``address`` once (blocking; meant for the CLI, not for event loops).

    ``tls``: connect with TLS (files are read now; a bad one is
    INVALID_ARGUMENTS naming the flag and file).
    """
    if timeout <= 0:
        return ProbeResult(ProbeStatus.INVALID_ARGUMENTS, f"--timeout must be > 0, got {timeout}")
    try:
        host, port = parse_host_port(address)
        credentials = None if tls is None else tls.load().current()
    except ConfigError as exc:
        return ProbeResult(ProbeStatus.INVALID_ARGUMENTS, str(exc))
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options = [("grpc.enable_retries", 0), *(tls.channel_options() if tls else [])]
    channel = (
        grpc.insecure_channel(target, options=options)
        if credentials is None
        else grpc.secure_channel(target, credentials, options=options)
    )
    with channel:
        failure = _wait_ready(channel, target, timeout, tls=tls is not None)
        if failure is not None:
            return failure
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            return _rpc_failure(exc, target, timeout)
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status == health_pb2.HealthCheckResponse.SERVING:
        return ProbeResult(ProbeStatus.SERVING, "status: SERVING")
    return ProbeResult(ProbeStatus.NOT_SERVING, f"service unhealthy (responded with {name!r})")


def _wait_ready(
    channel: grpc.Channel, target: str, timeout: float, *, tls: bool
) -> ProbeResult | None:
    """None once connected; a CONNECTION_FAILURE on timeout or on a TLS failure."""
    states: queue.SimpleQueue[grpc.ChannelConnectivity] = queue.SimpleQueue()
    channel.subscribe(states.put, try_to_connect=True)
    deadline = time.monotonic() + timeout
    error: str | None = None
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                state = states.get(timeout=left)
            except queue.Empty:
                break
            if state is grpc.ChannelConnectivity.READY:
                return None
            if state is grpc.ChannelConnectivity.TRANSIENT_FAILURE:
                error = _connect_error(channel, left) or error
                hint = None if error is None else explain_connect_error(error, tls=tls)
                if hint is not None:
                    return ProbeResult(
                        ProbeStatus.CONNECTION_FAILURE,
                        f"failed to connect to {target}: {hint} ({error})",
                    )
    finally:
        channel.unsubscribe(states.put)
    suffix = f" (last error: {error})" if error else ""
    return ProbeResult(
        ProbeStatus.CONNECTION_FAILURE,
        f"timeout: failed to connect to {target} within {timeout:g}s{suffix}",
    )


def _connect_error(channel: grpc.Channel, left: float) -> str | None:
    """grpc's last connection error: a call that does not wait for ready fails
    at once with it while the channel is in TRANSIENT_FAILURE."""
    try:
        health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), wait_for_ready=False, timeout=max(0.05, left)
        )
    except grpc.RpcError as exc:
        if exc.code() is grpc.StatusCode.UNAVAILABLE:
            return last_error(exc.details() or "")
    return None


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
