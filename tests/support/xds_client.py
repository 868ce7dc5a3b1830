"""A load client that uses gRPC's own xDS support: ``python tests/support/xds_client.py``.

Run in a subprocess with ``GRPC_XDS_BOOTSTRAP_CONFIG`` set (C-core reads it when
the first ``xds:`` channel is created). It calls ``DescribeAgent`` on
``xds:///NAME`` from ``--concurrency`` threads until stdin closes or
``--duration`` passes, printing one JSON line per call:
``{"t": wall-clock seconds, "by": instance_id}`` or ``{"t": ..., "err": CODE}``.
Nothing of ecsgrpc is imported: the channel, resolver and balancer are grpcio's.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import grpc

from ecsgrpc_apps.workflow._proto import workflow_agent_pb2, workflow_agent_pb2_grpc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=0.0)
    parser.add_argument("--deadline", type=float, default=5.0)
    parser.add_argument("--wait-for-ready", action="store_true")
    parser.add_argument("--tls-ca", help="TLS to the endpoints: the CA (PEM) to trust.")
    parser.add_argument("--tls-cert", help="mTLS: the client certificate (PEM).")
    parser.add_argument("--tls-key", help="mTLS: the client key (PEM).")
    args = parser.parse_args()
    if args.tls_ca:
        # Plain grpc TLS credentials: grpcio's xDS client applies them to every
        # endpoint it connects to (the authority, NAME, is the name verified).
        def read(path: str | None) -> bytes | None:
            return None if path is None else open(path, "rb").read()

        creds = grpc.ssl_channel_credentials(
            read(args.tls_ca), read(args.tls_key), read(args.tls_cert)
        )
        channel = grpc.secure_channel(args.target, creds)
    else:
        channel = grpc.insecure_channel(args.target)
    stub = workflow_agent_pb2_grpc.WorkflowAgentStub(channel)
    lock = threading.Lock()
    stop = threading.Event()
    end = time.monotonic() + args.duration

    def emit(record: dict[str, object]) -> None:
        line = json.dumps(record)
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def worker() -> None:
        while not stop.is_set() and time.monotonic() < end:
            try:
                reply = stub.DescribeAgent(
                    workflow_agent_pb2.DescribeAgentRequest(),
                    timeout=args.deadline,
                    wait_for_ready=args.wait_for_ready,
                )
                emit({"t": time.time(), "by": reply.instance_id})
            except grpc.RpcError as exc:
                emit({"t": time.time(), "err": exc.code().name, "details": exc.details()})
            if args.interval:
                time.sleep(args.interval)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.concurrency)]
    for thread in threads:
        thread.start()
    # Closing stdin stops the client (the test's way to end it cleanly).
    watcher = threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True)
    watcher.start()
    for thread in threads:
        thread.join()
    channel.close()


if __name__ == "__main__":
    main()
