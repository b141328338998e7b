"""``import_time`` and ``start_stop``: ``import metrana``, ``init()`` until the first
``log()``, ``close()`` of an idle writer; each in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import init_run, median, ms_figure, unique_run_name
from .context import Bench
from .processes import ask_child


def _parse_importtime(stderr: str) -> tuple[list[float], float, dict[str, list[float]]]:
    """From ``-X importtime`` output: the ``metrana`` package's cumulative ms, the self time
    of metrana's own modules, and the cumulative ms of each other top-level package imported
    on the way (a failed import is listed again at every attempt, hence lists)."""
    cumulative: list[float] = []
    own_self = 0.0
    others: dict[str, list[float]] = {}
    for line in stderr.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        name = parts[2]
        self_us = int(parts[0].rsplit(":", 1)[-1])
        if name == "metrana" or name.startswith("metrana."):
            own_self += self_us / 1000  # metrana's own modules, without what they import
            if name == "metrana":
                cumulative.append(int(parts[1]) / 1000)
        elif "." not in name and name not in ("encodings", "site"):
            # the top-level packages imported on the way (dependencies, stdlib)
            others.setdefault(name, []).append(int(parts[1]) / 1000)
    return cumulative, own_self, others


def bench_import(repeat: int) -> list[dict[str, Any]]:
    """``import metrana`` in fresh interpreters: wall time beside ``python -c pass``, and
    ``-X importtime``'s cumulative figure with the largest imports."""
    py = sys.executable
    # As an installed package is imported: from cached bytecode (some environments set
    # PYTHONDONTWRITEBYTECODE, which makes every import compile every module again).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([py, "-c", "import metrana"], check=True, capture_output=True, env=env)

    def wall(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([py, "-c", code], check=True, capture_output=True, env=env)
        return (time.perf_counter() - started) * 1000

    bare, full, cumulative, own = [], [], [], []
    biggest: dict[str, list[float]] = {}
    for _ in range(repeat):
        bare.append(wall("pass"))
        full.append(wall("import metrana"))
        result = subprocess.run(
            [py, "-X", "importtime", "-c", "import metrana"],
            capture_output=True,
            text=True,
            env=env,
        )
        package_ms, own_self, others = _parse_importtime(result.stderr)
        cumulative += package_ms
        own.append(own_self)
        for name, values in others.items():
            biggest.setdefault(name, []).extend(values)
    diffs = [f - b for f, b in zip(full, bare, strict=True)]
    return [
        ms_figure("import_time", "baseline: python -c pass", bare),
        ms_figure("import_time", "python -c 'import metrana' minus python -c pass", diffs),
        {
            **ms_figure("import_time", "import metrana (-X importtime, cumulative)", cumulative),
            "metrana_modules_self_ms": round(median(own), 1),
            "largest_imports_ms": dict(
                sorted(
                    ((name, round(median(v), 1)) for name, v in biggest.items()),
                    key=lambda item: -item[1],
                )[:12]
            ),
        },
    ]


def _startstop_child(conn: Any) -> None:
    import metrana

    started_ns = time.time_ns()
    started = time.perf_counter()
    init_run(unique_run_name("startstop"))
    metrana.log("loss", 0.5, step=0)
    first = time.perf_counter() - started
    accepted_ns = time.time_ns()
    # where the time went, from the session directory: the dispatcher's start (dispatcher.json
    # says when it held its lock, imports done) and its handshake (handshake.json written)
    phases: dict[str, float] = {}
    root = Path(os.environ["METRANA_SESSION_ROOT"])
    try:
        info_path = next(root.glob("*/dispatcher.json"))
        locked_ns = json.loads(info_path.read_bytes())["started_ns"]
        handshake_ns = (info_path.parent / "handshake.json").stat().st_mtime_ns
        phases = {
            "until the dispatcher runs (spawn, imports, lock)": (locked_ns - started_ns) / 1e6,
            "dispatcher opens the run (store, handshake)": (handshake_ns - locked_ns) / 1e6,
            "writer sees the handshake, first log()": (accepted_ns - handshake_ns) / 1e6,
        }
    except (StopIteration, OSError, ValueError, KeyError):
        pass
    for i in range(1, 100):
        metrana.log("loss", 0.5, step=i)
    metrana.flush(timeout=60)
    time.sleep(0.3)  # idle: nothing pending
    started = time.perf_counter()
    metrana.close()
    closed = time.perf_counter() - started
    conn.send((first * 1000, closed * 1000, phases))


def bench_start_stop(bench: Bench, repeat: int) -> list[dict[str, Any]]:
    """``init()`` until the first ``log()`` returned, in a new session each time (the
    dispatcher's start included, with its phases), and ``close()`` of an idle writer."""
    first, closed = [], []
    phases: dict[str, list[float]] = {}
    for _ in range(repeat):
        bench.fresh("startstop")  # a new session: this init() starts the dispatcher
        a, b, where = ask_child(_startstop_child, (), 120, "start/stop")
        for name, ms in where.items():
            phases.setdefault(name, []).append(ms)
        first.append(round(a, 1))
        closed.append(round(b, 1))
    return [
        {
            **ms_figure(
                "start_stop",
                "init() until the first log() is accepted (dispatcher start included)",
                first,
            ),
            "phases_ms": {name: round(median(v), 1) for name, v in phases.items()},
        },
        ms_figure("start_stop", "close() of an idle writer", closed),
    ]
