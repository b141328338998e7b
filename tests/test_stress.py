"""The short version of the stress harness: faults of every kind, then exactly once."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_stress_run_under_mixed_faults_stores_every_point_exactly_once() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stress", "run", "--quick", "--seed", "5"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    verdict = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout + result.stderr
    assert verdict.startswith("VERDICT exactly once:"), verdict
    assert "0 writers crashed; missing 0, duplicates 0, wrong values 0" in verdict
    faults = dict(
        (kind, int(count))
        for count, kind in re.findall(r"(\d+) (\w+)", verdict.split("faults:")[1])
    )
    assert faults.get("kill_dispatcher", 0) >= 1, verdict
    stored = int(re.search(r"VERDICT exactly once: ([\d,]+) points", verdict)[1].replace(",", ""))  # type: ignore[index]
    assert stored >= 180_000
