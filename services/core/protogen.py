"""Generate the Python gRPC code for protos/retina/v1 (run with `make protos`).

The generated modules are checked in next to the .proto files so the package imports without
grpcio-tools; tests/test_protos.py regenerates into a temporary folder and fails if they differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parents[2] / "protos"


def generate(out_dir: Path = PROTO_ROOT) -> list[Path]:
    """Run protoc over every retina/v1 proto, writing *_pb2.py, *_pb2.pyi and *_pb2_grpc.py to out_dir."""
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "retina" / "v1").glob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    return sorted((out_dir / "retina" / "v1").glob("*_pb2*.py*"))


if __name__ == "__main__":
    for path in generate():
        print(path)
    sys.exit(0)
