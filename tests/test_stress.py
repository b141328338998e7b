"""The short version of the stress harness: faults of every kind, then exactly once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import run_python

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_stress_run_under_mixed_faults_stores_every_point_exactly_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)  # `python -m stress`; run_python kills the whole tree on timeout
    result = run_python("-m", "stress", "run", "--quick", "--seed", "5", timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    verdict = result.stdout.strip().splitlines()[-1]
    assert verdict.startswith("VERDICT exactly once:"), verdict
    assert "0 writers crashed; missing 0, duplicates 0, wrong values 0" in verdict
    faults = dict(
        (kind, int(count))
        for count, kind in re.findall(r"(\d+) (\w+)", verdict.split("faults:")[1])
    )
    assert faults.get("kill_dispatcher", 0) >= 1, verdict
    stored = int(re.search(r"VERDICT exactly once: ([\d,]+) points", verdict)[1].replace(",", ""))  # type: ignore[index]
    assert stored >= 180_000
