"""Regenerate the committed Python stubs from proto/ (run: python scripts/gen_proto.py [OUT])."""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent

# (proto folder, the package path it maps onto, the .proto files in it). The
# mapping makes generated imports absolute ("from ecsgrpc_apps.workflow._proto
# import ...") so they need no sys.path tricks.
PROTO_SETS: tuple[tuple[Path, str, tuple[str, ...]], ...] = (
    (ROOT / "proto" / "workflow" / "v1", "ecsgrpc_apps/workflow/_proto", ("workflow_agent.proto",)),
    (
        ROOT / "proto" / "grpc" / "testing",
        "ecsgrpc_apps/interop/_proto",
        ("empty.proto", "messages.proto", "test.proto"),
    ),
)


def generate(out_root: Path) -> None:
    """Write *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every proto set under out_root."""
    include = str(Path(protoc.__file__).parent / "_proto")
    for proto_dir, virtual, files in PROTO_SETS:
        (out_root / virtual).mkdir(parents=True, exist_ok=True)
        args = [
            "protoc",
            f"-I{virtual}={proto_dir}",
            f"-I{include}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}",
            *(f"{virtual}/{name}" for name in files),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {proto_dir}")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "src")
