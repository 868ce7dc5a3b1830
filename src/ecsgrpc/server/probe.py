"""The engine of ``ecsgrpc probe``: one ``grpc.health.v1.Health/Check``, as
grpc_health_probe does it, with its exit codes: 0 serving, 1 invalid
arguments, 2 connection failure (timeout, TLS handshake, not a gRPC server),
3 RPC failure, 4 not serving.

A connection that fails for a reason waiting cannot fix (TLS mismatch,
untrusted certificate, an HTTP/1.x server on the port) ends the probe at once
with a message naming the cause, instead of waiting out the timeout.
Synchronous (grpc's blocking API): it runs in a short-lived CLI process.
"""

from __future__ import annotations

import enum
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ecsgrpc.errors import ConfigError
from ecsgrpc.security.client_tls import ClientTls
from ecsgrpc.security.diagnose import explain_connect_error, last_error
from ecsgrpc.targets_util import parse_host_port

__all__ = ["PROBE_TLS_FLAGS", "ProbeOptions", "ProbeResult", "ProbeStatus", "probe"]


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
PROBE_TLS_FLAGS = ("-tls-ca-cert", "-tls-client-cert", "-tls-client-key", "-tls-server-name")


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    """grpc_health_probe's settings; durations in seconds."""

    service: str = ""
    connect_timeout: float = 1.0
    rpc_timeout: float = 1.0
    tls: ClientTls | None = None
    tls_no_verify: bool = False
    metadata: tuple[tuple[str, str], ...] = ()
    gzip: bool = False
    user_agent: str = "grpc_health_probe"
    verbose: Callable[[str], None] | None = None


def probe(address: str, *, options: ProbeOptions | None = None) -> ProbeResult:
    """Check ``address`` once (blocking; meant for the CLI, not for event loops).

    ``address`` is ``host:port`` (``:port`` means localhost, as for
    grpc_health_probe). TLS files are read now: a bad one is INVALID_ARGUMENTS
    naming the flag and file.
    """
    opts = options or ProbeOptions()
    say = opts.verbose or (lambda _line: None)
    try:
        target = _target(address)
        credentials, tls_options = _credentials(opts, target)
    except ConfigError as exc:
        return ProbeResult(ProbeStatus.INVALID_ARGUMENTS, str(exc))
    channel_options: list[tuple[str, Any]] = [
        ("grpc.enable_retries", 0),
        ("grpc.primary_user_agent", opts.user_agent),
        *tls_options,
    ]
    compression = grpc.Compression.Gzip if opts.gzip else None
    channel = (
        grpc.insecure_channel(target, options=channel_options, compression=compression)
        if credentials is None
        else grpc.secure_channel(target, credentials, channel_options, compression)
    )
    try:
        say(f"establishing connection to {target}")
        started = time.monotonic()
        failure = _wait_ready(channel, target, opts.connect_timeout, tls=credentials is not None)
        if failure is not None:
            return failure
        connected = time.monotonic() - started
        say(f"connection established (took {connected:.3f}s)")
        return _check(channel, target, opts, say, connected)
    finally:
        # Closing waits for grpc's connectivity-polling thread to wake (up to
        # 0.2 s, twice the whole check): close in the background, so the
        # result is not held for it (the CLI then exits at once).
        threading.Thread(target=channel.close, name="probe-close", daemon=True).start()


def _target(address: str) -> str:
    text = "localhost" + address if address.startswith(":") else address
    host, port = parse_host_port(text)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _credentials(
    opts: ProbeOptions, target: str
) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, Any]]]:
    if opts.tls is None:
        return None, []
    if opts.tls_no_verify:
        from ecsgrpc.security.unverified import presented_chain_credentials

        return presented_chain_credentials(target, opts.connect_timeout, opts.tls)
    return opts.tls.load().current(), opts.tls.channel_options()


def _check(
    channel: grpc.Channel,
    target: str,
    opts: ProbeOptions,
    say: Callable[[str], None],
    connected: float,
) -> ProbeResult:
    stub = health_pb2_grpc.HealthStub(channel)
    started = time.monotonic()
    try:
        reply = stub.Check(
            health_pb2.HealthCheckRequest(service=opts.service),
            timeout=opts.rpc_timeout,
            metadata=opts.metadata or None,
        )
    except grpc.RpcError as exc:
        return _rpc_failure(exc, target, opts)
    say(f"time elapsed: connect={connected:.3f}s rpc={time.monotonic() - started:.3f}s")
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status == health_pb2.HealthCheckResponse.SERVING:
        return ProbeResult(ProbeStatus.SERVING, "status: SERVING")
    return ProbeResult(ProbeStatus.NOT_SERVING, f"service unhealthy (responded with {name!r})")


def _wait_ready(
    channel: grpc.Channel, target: str, timeout: float, *, tls: bool
) -> ProbeResult | None:
    """None once connected; a CONNECTION_FAILURE on timeout or a lasting failure."""
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
                lasting = None if error is None else _lasting_failure(error, target, tls=tls)
                if lasting is not None:
                    return lasting
    finally:
        channel.unsubscribe(states.put)
    suffix = f" (last error: {error})" if error else ""
    return ProbeResult(
        ProbeStatus.CONNECTION_FAILURE,
        f"timeout: failed to connect to {target} within {timeout:g}s{suffix}",
    )


def _lasting_failure(error: str, target: str, *, tls: bool) -> ProbeResult | None:
    """A failure that retrying within the timeout cannot fix, as a result."""
    lowered = error.lower()
    if "http1" in lowered or "failed parsing http/2" in lowered:
        got = "got HTTP/1.x" if _speaks_http1(target) else "it does not speak HTTP/2"
        return ProbeResult(
            ProbeStatus.CONNECTION_FAILURE,
            f"failed to connect to {target}: not a gRPC server ({got})",
        )
    hint = explain_connect_error(error, tls=tls)
    if hint is None:
        return None
    return ProbeResult(
        ProbeStatus.CONNECTION_FAILURE, f"failed to connect to {target}: {hint} ({error})"
    )


def _speaks_http1(target: str, timeout: float = 0.5) -> bool:
    """Whether ``target`` answers an HTTP/1.0 request with an HTTP/1.x status line."""
    host, port = parse_host_port(target)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"HEAD / HTTP/1.0\r\nHost: probe\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False


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


def _rpc_failure(exc: grpc.RpcError, target: str, opts: ProbeOptions) -> ProbeResult:
    code, details = exc.code(), exc.details() or ""
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return ProbeResult(
            ProbeStatus.RPC_FAILURE,
            f"timeout: health rpc to {target} did not complete within {opts.rpc_timeout:g}s",
        )
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return ProbeResult(
            ProbeStatus.RPC_FAILURE,
            f"{target} does not implement the grpc health protocol (grpc.health.v1.Health)",
        )
    if code is grpc.StatusCode.NOT_FOUND:
        return ProbeResult(
            ProbeStatus.RPC_FAILURE,
            f"{target} does not know the service {opts.service!r} (NOT_FOUND): check -service",
        )
    return ProbeResult(
        ProbeStatus.RPC_FAILURE, f"health rpc to {target} failed: {code.name} {details}"
    )
