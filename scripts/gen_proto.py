"""Regenerate the committed Python stubs from proto/ (run: python scripts/gen_proto.py [OUT])."""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto" / "workflow" / "v1"
# Map the .proto onto the package path so generated imports are absolute
# ("from ecsgrpc_apps.workflow._proto import ...") and need no sys.path tricks.
VIRTUAL = "ecsgrpc_apps/workflow/_proto"


def generate(out_root: Path) -> None:
    """Write *_pb2.py, *_pb2.pyi and *_pb2_grpc.py under out_root/ecsgrpc_apps/workflow/_proto."""
    (out_root / VIRTUAL).mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{VIRTUAL}={PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"{VIRTUAL}/workflow_agent.proto",
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "src")
