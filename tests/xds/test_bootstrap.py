"""Client bootstraps (gRFC A27 format) and the ``ecsgrpc xds`` command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from ecsgrpc.cli import main
from ecsgrpc.errors import ConfigError
from ecsgrpc.xds.bootstrap import bootstrap_config, bootstrap_json, ecs_task_info, server_uri

TASK = {
    "Cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/workflow",
    "TaskARN": "arn:aws:ecs:us-east-1:123456789012:task/workflow/0123456789abcdef",
    "AvailabilityZone": "us-east-1b",
}


@pytest.fixture
def task_metadata(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real HTTP server answering ``GET /v4/ID/task`` like ECS's metadata endpoint v4."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/v4/abc/task":
                self.send_error(404)
                return
            body = json.dumps(TASK).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.17.120", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.17.120:{server.server_port}/v4/abc"
    monkeypatch.setenv("ECS_CONTAINER_METADATA_URI_V4", url)
    yield url
    server.shutdown()
    server.server_close()


def test_replicas_given_as_ip_literals_become_one_server_uri() -> None:
    assert server_uri(["127.0.17.100:18000", "127.0.17.101:18001"]) == [
        "ipv4:127.0.17.100:18000,127.0.17.101:18001"
    ]
    assert server_uri(["xds.workflow.local:18000"]) == ["dns:///xds.workflow.local:18000"]
    assert server_uri(["[::1]:18000"]) == ["ipv6:[::1]:18000"]
    assert server_uri(["dns:///xds.local:18000"]) == ["dns:///xds.local:18000"]


@pytest.mark.parametrize("bad", ["xds.local", "xds.local:0", "xds.local:99999", ":18000"])
def test_bad_server_is_a_config_error_naming_it(bad: str) -> None:
    with pytest.raises(ConfigError, match=repr(bad).replace("[", r"\[")):
        server_uri([bad])


def test_bootstrap_shape_node_locality_and_insecure_or_tls_creds(tmp_path: Path) -> None:
    plain = bootstrap_config(["127.0.17.100:18000"], node_id="n1")
    assert plain["node"] == {"id": "n1", "cluster": "", "locality": {}}
    server = plain["xds_servers"][0]
    assert server["channel_creds"] == [{"type": "insecure"}]
    assert server["server_features"] == ["xds_v3"]
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "c.pem", "k.pem"))
    for path in (ca, cert, key):
        path.write_text("x")
    tls = bootstrap_config(["x:1"], zone="us-east-1a", tls_ca=ca, tls_cert=cert, tls_key=key)
    assert tls["node"]["locality"] == {"zone": "us-east-1a"}
    assert tls["xds_servers"][0]["channel_creds"] == [
        {
            "type": "tls",
            "config": {
                "ca_certificate_file": str(ca),
                "certificate_file": str(cert),
                "private_key_file": str(key),
            },
        }
    ]
    with pytest.raises(ConfigError, match="--tls-key"):
        bootstrap_config(["x:1"], tls_ca=ca, tls_cert=cert)
    with pytest.raises(ConfigError, match=re.escape("missing.pem")):
        bootstrap_config(["x:1"], tls_ca=tmp_path / "missing.pem")


def test_zone_and_node_id_from_the_ecs_task_metadata_endpoint(task_metadata: str) -> None:
    info = ecs_task_info()
    assert info is not None and info.zone == "us-east-1b"
    boot = json.loads(bootstrap_json(["127.0.17.100:18000"]))
    assert boot["node"]["locality"] == {"zone": "us-east-1b"}
    assert boot["node"]["id"] == TASK["TaskARN"]
    # Explicit values win over the metadata.
    boot = json.loads(bootstrap_json(["127.0.17.100:18000"], zone="us-east-1c", node_id="me"))
    assert boot["node"]["locality"] == {"zone": "us-east-1c"} and boot["node"]["id"] == "me"


def test_metadata_endpoint_not_answering_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECS_CONTAINER_METADATA_URI_V4", "http://127.0.17.121:9/v4/x")
    with pytest.raises(
        ConfigError, match=re.escape("ECS task metadata at http://127.0.17.121:9/v4/x/task")
    ):
        ecs_task_info(timeout=1)
    monkeypatch.delenv("ECS_CONTAINER_METADATA_URI_V4")
    assert ecs_task_info() is None


def test_cli_bootstrap_prints_and_writes(
    task_metadata: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["xds", "bootstrap", "--server", "127.0.17.100:18000"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["node"]["locality"]["zone"] == "us-east-1b"
    out = tmp_path / "bootstrap.json"
    assert (
        main(["xds", "bootstrap", "--server", "a:1", "--server", "b:2", "--output", str(out)]) == 0
    )
    written = json.loads(out.read_text())
    assert [s["server_uri"] for s in written["xds_servers"]] == ["dns:///a:1", "dns:///b:2"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["serve", "--service", "agent"], "'agent'"),
        (["serve", "--service", "agent=nope://x"], "nope://x"),
        (["serve", "--service", "a=static:///127.0.17.2:1", "--lb", "random"], "'random'"),
        (["serve", "--service", "a=static:///127.0.17.2:1", "--retry-on", "5xx"], "'5xx'"),
        (["bootstrap", "--server", "nope"], "'nope'"),
        (["bootstrap", "--server", "a:1", "--output", "/nonexistent/dir/b.json"], "/nonexistent"),
    ],
)
def test_cli_bad_input_is_one_line_naming_the_value(args: list[str], named: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ecsgrpc", "xds", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert named in lines[0] and "Traceback" not in done.stderr


_WITHOUT_EXTRA = (
    "import sys\n"
    "sys.modules['envoy'] = None  # as if the 'xds' extra were not installed\n"
    "from ecsgrpc.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_without_the_xds_extra_serve_names_the_extra_and_bootstrap_still_works() -> None:
    serve = subprocess.run(
        [
            sys.executable,
            "-c",
            _WITHOUT_EXTRA,
            "xds",
            "serve",
            "--service",
            "a=static:///127.0.17.2:1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert serve.returncode == 2
    assert "pip install 'ecsgrpc[xds]'" in serve.stderr and "Traceback" not in serve.stderr
    boot = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRA, "xds", "bootstrap", "--server", "127.0.17.100:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert boot.returncode == 0, boot.stderr
    assert json.loads(boot.stdout)["xds_servers"][0]["server_uri"] == "ipv4:127.0.17.100:1"
