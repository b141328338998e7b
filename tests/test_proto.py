"""The generated protobuf module is reproducible from its source, ``metrana.proto``."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_python

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "src" / "metrana" / "proto"


@pytest.mark.slow
def test_the_generated_module_matches_the_proto_file(tmp_path: Path) -> None:
    run_python(str(ROOT / "scripts" / "gen_proto.py"), str(tmp_path), timeout=60)
    for name in ("metrana_pb2.py", "metrana_pb2.pyi"):
        assert (tmp_path / name).read_text() == (PROTO_DIR / name).read_text(), (
            f"src/metrana/proto/{name} is stale: run `python scripts/gen_proto.py`"
        )
