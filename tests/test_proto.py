"""The committed stubs must match the .proto (regenerate with `make proto`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scripts.gen_proto import PROTO_SETS, generate

ROOT = Path(__file__).resolve().parent.parent


def _normalise(text: str) -> list[str]:
    """Drop the version banners, which change with grpcio-tools; the code must not."""
    kept: list[str] = []
    in_version_check = False
    for line in text.splitlines():
        if "ValidateProtobufRuntimeVersion(" in line:
            in_version_check = True
        elif in_version_check:
            in_version_check = line.strip() != ")"
        elif "Protobuf Python Version" not in line and "GRPC_GENERATED_VERSION =" not in line:
            kept.append(line)
    return kept


@pytest.mark.parametrize(
    ("virtual", "files"), [(virtual, files) for _, virtual, files in PROTO_SETS], ids=str
)
def test_committed_stubs_match_the_proto(
    tmp_path: Path, virtual: str, files: tuple[str, ...]
) -> None:
    generate(tmp_path)
    fresh_dir = tmp_path / virtual
    committed_dir = ROOT / "src" / virtual
    names = sorted(p.name for p in fresh_dir.iterdir() if p.is_file())
    stems = sorted(name.removesuffix(".proto") for name in files)
    assert names == sorted(
        f"{stem}{suffix}" for stem in stems for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
    )
    for name in names:
        fresh = _normalise((fresh_dir / name).read_text())
        committed = _normalise((committed_dir / name).read_text())
        assert fresh == committed, f"{name} is stale: run `make proto` and commit"


def test_stubs_import_from_the_package() -> None:
    from ecsgrpc_apps.workflow import SERVICE_NAME, pb2, pb2_grpc

    assert pb2.DESCRIPTOR.services_by_name["WorkflowAgent"].full_name == SERVICE_NAME
    assert hasattr(pb2_grpc, "WorkflowAgentStub")


def test_interop_stubs_keep_grpc_wire_names() -> None:
    """Any gRPC interop client calls these exact paths; the names must not drift."""
    from ecsgrpc_apps.interop._proto import test_pb2

    services = test_pb2.DESCRIPTOR.services_by_name
    assert services["TestService"].full_name == "grpc.testing.TestService"
    assert services["UnimplementedService"].full_name == "grpc.testing.UnimplementedService"
    assert sorted(m.name for m in services["TestService"].methods) == sorted(
        [
            "EmptyCall",
            "UnaryCall",
            "CacheableUnaryCall",
            "StreamingOutputCall",
            "StreamingInputCall",
            "FullDuplexCall",
            "UnimplementedCall",
        ]
    )


def test_interop_messages_keep_grpc_field_numbers() -> None:
    """Field numbers are the wire contract with other gRPC interop implementations."""
    from ecsgrpc_apps.interop._proto import messages_pb2

    def numbers(message: Any) -> dict[str, int]:
        return {f.name: f.number for f in message.DESCRIPTOR.fields}

    assert numbers(messages_pb2.SimpleRequest) == {
        "response_type": 1,
        "response_size": 2,
        "payload": 3,
        "fill_username": 4,
        "fill_oauth_scope": 5,
        "response_compressed": 6,
        "response_status": 7,
        "expect_compressed": 8,
        "fill_server_id": 9,
    }
    assert numbers(messages_pb2.SimpleResponse) == {
        "payload": 1,
        "username": 2,
        "oauth_scope": 3,
        "server_id": 4,
        "hostname": 6,
    }
    assert numbers(messages_pb2.StreamingInputCallRequest) == {
        "payload": 1,
        "expect_compressed": 2,
    }
    assert numbers(messages_pb2.StreamingInputCallResponse) == {"aggregated_payload_size": 1}
    assert numbers(messages_pb2.ResponseParameters) == {
        "size": 1,
        "interval_us": 2,
        "compressed": 3,
    }
    assert numbers(messages_pb2.StreamingOutputCallRequest) == {
        "response_type": 1,
        "response_parameters": 2,
        "payload": 3,
        "response_status": 7,
    }
    assert numbers(messages_pb2.StreamingOutputCallResponse) == {"payload": 1}
    assert numbers(messages_pb2.Payload) == {"type": 1, "body": 2}
    assert numbers(messages_pb2.EchoStatus) == {"code": 1, "message": 2}
    assert numbers(messages_pb2.BoolValue) == {"value": 1}
    assert messages_pb2.DESCRIPTOR.package == "grpc.testing"
