"""grpc-js + grpc-js-xds against a TLS control plane: what its bootstrap accepts.

grpc-js-xds (1.14, the latest on npm) accepts two ``channel_creds`` types in
its bootstrap: ``insecure`` and ``google_default``. It has no ``tls`` type
(gRFC A65), so it cannot present a client certificate (no mTLS to the control
plane). ``google_default`` is TLS (the default roots, which grpc-js reads from
``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`` when set) plus Google call credentials
(Application Default Credentials). Off Google Cloud those credentials can be a
service-account key file, from which the client signs its own JWTs without a
network call; the control plane ignores the ``authorization`` header. These
tests show each of those facts with the real packages; docs/xds.md states them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ecsgrpc.xds.bootstrap import bootstrap_json
from ecsgrpc_apps.local.emulator import AwsEmulator
from tests.support.agents import AgentProcess, wait_until
from tests.support.certs import TlsFiles, make_tls_files
from tests.support.xds import ControlPlaneProcess, XdsClient, node_client
from tests.xds.conftest import NAME, TARGET, register_async

pytestmark = pytest.mark.timeout(240)

SERVICE = ("--service", f"{NAME}={TARGET}")
PLANE_HOST = "127.0.17.110"


def _with_creds(bootstrap: str, creds: list[dict[str, object]]) -> str:
    doc = json.loads(bootstrap)
    for server in doc["xds_servers"]:
        server["channel_creds"] = creds
    return json.dumps(doc)


def _service_account_key(directory: Path) -> Path:
    """A Google service-account key file of a made-up account (a fresh RSA key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = directory / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "ecsgrpc-test",
                "private_key_id": "0" * 40,
                "private_key": pem,
                "client_email": "xds-client@ecsgrpc-test.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    return path


async def _tls_plane(
    aws: AwsEmulator,
    agents: Callable[..., AgentProcess],
    control_planes: Callable[..., ControlPlaneProcess],
    tmp_path: Path,
) -> tuple[ControlPlaneProcess, TlsFiles, set[str]]:
    svc = await asyncio.to_thread(aws.provision_cloudmap)
    procs = list(
        await asyncio.gather(
            *(asyncio.to_thread(agents, h) for h in ("127.0.17.12", "127.0.17.13"))
        )
    )
    for proc in procs:
        await register_async(aws, svc, proc, "us-east-1a")
    files = make_tls_files(tmp_path, sans=[PLANE_HOST])
    tls = ("--tls-cert", str(files.server_cert), "--tls-key", str(files.server_key))
    plane = await asyncio.to_thread(control_planes, PLANE_HOST, *SERVICE, *tls)
    return plane, files, {p.instance_id for p in procs}


async def test_grpc_js_reaches_a_tls_control_plane_with_google_default_creds(
    aws: AwsEmulator,
    agents: Callable[..., AgentProcess],
    control_planes: Callable[..., ControlPlaneProcess],
    clients: list[XdsClient],
    node_modules: Path,
    tmp_path: Path,
) -> None:
    plane, files, ids = await _tls_plane(aws, agents, control_planes, tmp_path)
    google = _with_creds(bootstrap_json([plane.address]), [{"type": "google_default"}])
    trusting = {
        "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(files.ca),
        "GOOGLE_APPLICATION_CREDENTIALS": str(_service_account_key(tmp_path)),
    }
    good = node_client(google, f"xds:///{NAME}", tmp_path, modules=node_modules, extra_env=trusting)
    # The same credentials without our CA among the roots: the handshake fails.
    untrusting = node_client(
        google,
        f"xds:///{NAME}",
        tmp_path,
        modules=node_modules,
        extra_env={"GOOGLE_APPLICATION_CREDENTIALS": trusting["GOOGLE_APPLICATION_CREDENTIALS"]},
    )
    # Plaintext to a TLS control plane: no configuration either.
    plain = node_client(
        bootstrap_json([plane.address]), f"xds:///{NAME}", tmp_path, modules=node_modules
    )
    clients.extend([good, untrusting, plain])
    start = time.time()
    assert await wait_until(lambda: set(good.served(start)) == ids, 60), good.stderr()[-2000:]
    await asyncio.sleep(2)
    assert untrusting.served() == {}
    assert plain.served() == {}
    good.stop()
    assert good.errors() == []


async def test_grpc_js_refuses_a_bootstrap_with_only_tls_channel_creds(
    node_modules: Path, tmp_path: Path
) -> None:
    ca = make_tls_files(tmp_path, sans=[PLANE_HOST]).ca
    bootstrap = bootstrap_json([f"{PLANE_HOST}:1"], tls_ca=ca)
    assert [c["type"] for c in json.loads(bootstrap)["xds_servers"][0]["channel_creds"]] == ["tls"]
    # The package's own bootstrap validation says why.
    check = subprocess.run(
        [
            "node",
            "-e",
            "const b = require('@grpc/grpc-js-xds/build/src/xds-bootstrap');"
            "try { b.validateBootstrapConfig(JSON.parse(process.env.B)); console.log('accepted'); }"
            "catch (e) { console.log(e.message); }",
        ],
        env={**os.environ, "NODE_PATH": str(node_modules), "B": bootstrap},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "must contain at least one entry with a type in [google_default,insecure]" in (
        check.stdout
    ), check
    # A client with that bootstrap: every call fails name resolution, none is served.
    client = node_client(bootstrap, f"xds:///{NAME}", tmp_path, modules=node_modules, duration=3)
    try:
        assert await wait_until(lambda: len(client.errors()) >= 3, 30), client.stderr()[-2000:]
        assert client.served() == {}
        assert all(
            e["err"] == "UNAVAILABLE" and "xDS name resolution failed" in str(e["details"])
            for e in client.errors()
        ), client.errors()[:3]
    finally:
        client.stop(timeout=5)
