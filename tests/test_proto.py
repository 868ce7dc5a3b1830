"""The committed stubs must match the .proto (regenerate with `make proto`)."""

from __future__ import annotations

from pathlib import Path

from scripts.gen_proto import VIRTUAL, generate

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


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    generate(tmp_path)
    fresh_dir = tmp_path / VIRTUAL
    committed_dir = ROOT / "src" / VIRTUAL
    names = sorted(p.name for p in fresh_dir.iterdir() if p.is_file())
    assert names == [
        "workflow_agent_pb2.py",
        "workflow_agent_pb2.pyi",
        "workflow_agent_pb2_grpc.py",
    ]
    for name in names:
        fresh = _normalise((fresh_dir / name).read_text())
        committed = _normalise((committed_dir / name).read_text())
        assert fresh == committed, f"{name} is stale: run `make proto` and commit"


def test_stubs_import_from_the_package() -> None:
    from ecsgrpc_apps.workflow import SERVICE_NAME, pb2, pb2_grpc

    assert pb2.DESCRIPTOR.services_by_name["WorkflowAgent"].full_name == SERVICE_NAME
    assert hasattr(pb2_grpc, "WorkflowAgentStub")
