"""Regenerate src/metrana/proto/metrana_pb2.py (and .pyi) from metrana.proto (needs grpcio-tools).

Usage: python scripts/gen_proto.py [OUTPUT_DIR]   (default: src/metrana/proto)
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

PROTO_DIR = Path(__file__).resolve().parent.parent / "src" / "metrana" / "proto"


def generate(output: Path) -> Path:
    output.mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        [
            "protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={output}",
            f"--pyi_out={output}",
            str(PROTO_DIR / "metrana.proto"),
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed with code {code}")
    return output / "metrana_pb2.py"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_DIR
    print(generate(target))
