"""The ``environment`` figures: the machine, how busy others keep it, the commit measured."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil


def _provenance() -> dict[str, Any]:
    """The commit measured, and whether src/ had uncommitted changes (others edit it)."""
    import metrana

    src = Path(metrana.__file__).resolve().parent
    try:

        def git(*args: str) -> str:
            out = subprocess.run(
                ["git", *args], cwd=src, capture_output=True, text=True, timeout=10
            )
            return out.stdout

        head = git("rev-parse", "--short", "HEAD").strip()
        dirty = git("status", "--porcelain", ".")
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": head, "src_uncommitted_files": len(dirty.splitlines())}


def _other_cpu_percent(interval: float = 0.5) -> tuple[float, list[str]]:
    """CPU% used by processes other than this one and its children (how shared the machine
    is), and the busiest of them."""
    me = psutil.Process()
    ours = {me.pid, *(c.pid for c in me.children(recursive=True))}
    procs = [p for p in psutil.process_iter(["pid", "name", "cmdline"]) if p.pid not in ours]
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(interval)
    busy = []
    for p in procs:
        try:
            busy.append((p.cpu_percent(None), " ".join(p.info["cmdline"] or [p.info["name"]])))
        except psutil.Error:
            continue
    busy.sort(reverse=True)
    total = sum(c for c, _ in busy)
    return round(total, 1), [f"{c:.0f}% {cmd[:70]}" for c, cmd in busy[:4] if c >= 5]


def _load(when: str) -> dict[str, Any]:
    """The load average and the other processes' CPU now, keyed ``..._start`` or ``..._end``."""
    other, busiest = _other_cpu_percent()
    return {
        f"loadavg_{when}": [round(x, 2) for x in os.getloadavg()],
        f"other_processes_cpu_percent_{when}": other,
        "busiest_other_processes": busiest,
    }


def machine_at_start(quick: bool, repeat: int) -> dict[str, Any]:
    """The machine before the first measurement: CPUs, load, other processes, the commit."""
    return {
        "figure": "environment",
        "what": "machine",
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        **_load("start"),
        "quick": quick,
        "repeat": repeat,
        **_provenance(),
    }


def machine_at_end(started: float) -> dict[str, Any]:
    """The machine after the last measurement, and how long the measurements took since
    ``started`` (a ``time.monotonic()``)."""
    return {
        "figure": "environment",
        "what": "machine at the end",
        **_load("end"),
        "seconds": round(time.monotonic() - started, 1),
    }
