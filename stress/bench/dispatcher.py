"""``dispatcher_cpu`` and ``profile``: the dispatcher's CPU per million points during the
end-to-end runs, and where it goes (py-spy on the dispatcher)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .common import median, values_of


class Spy:
    """py-spy recording a process (raw collapsed stacks), stopped with SIGINT."""

    RATE = 250

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        self.process: subprocess.Popen[bytes] | None = None
        self.note = ""
        exe = Path(sys.executable).with_name("py-spy")
        found = str(exe) if exe.exists() else shutil.which("py-spy")
        if found is None:
            self.note = "py-spy not installed: profile skipped"
            return
        self.process = subprocess.Popen(
            [found, "record", "-p", str(pid), "-f", "raw", "-o", str(out), "--nolineno",
             "-r", str(self.RATE)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(0.3)  # attaching takes a moment
        if self.process.poll() is not None:
            err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
            self.note = f"py-spy could not attach: {err.strip()[-200:]}"
            self.process = None

    def stop(self, points: int) -> dict[str, Any]:
        """Stop recording; the profile per point of the ``points`` logged meanwhile."""
        if self.process is None:
            return {"note": self.note}
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return {"note": "py-spy did not stop"}
        return parse_profile(self.out, self.RATE, points)


def parse_profile(path: Path, rate: int, points: int, top: int = 15) -> dict[str, Any]:
    """Self time per frame from py-spy's raw output (``frame;frame;leaf count`` lines)."""
    own: Counter[str] = Counter()
    total = storage = 0
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {"note": "py-spy wrote no profile"}
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        own[frames[-1].strip()] += count
        total += count
        if any("storage" in f or "sqlite3" in f for f in frames):
            storage += count
    if total == 0:
        return {"note": "py-spy took no samples"}
    return {
        "samples": total,
        "rate_hz": rate,
        "sampled_seconds": round(total / rate, 2),
        "storage_share": round(storage / total, 3),
        "top_self": [
            {
                "frame": frame,
                "share": round(count / total, 3),
                "sampled_us_per_point": round(count / rate / max(points, 1) * 1e6, 3),
            }
            for frame, count in own.most_common(top)
        ],
    }


def add_cpu_time(profile: dict[str, Any], cpu_us_per_point: float) -> None:
    """Each frame's share of the samples as CPU-µs per point, from the dispatcher's measured
    CPU time: py-spy counts a runnable thread waiting for a CPU as busy."""
    profile["cpu_us_per_point"] = round(cpu_us_per_point, 3)
    for frame in profile["top_self"]:
        frame["cpu_us_per_point"] = round(frame["share"] * cpu_us_per_point, 3)


def dispatcher_cpu_figures(
    embedded: list[dict[str, Any]], http: list[dict[str, Any]], profiled: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Dispatcher CPU-seconds per million points, from the end-to-end runs: embedded (with
    and, given the profile's storage share, without the storage engine) and over HTTP."""
    out: list[dict[str, Any]] = []
    emb_cpu = values_of(embedded, "dispatcher_cpu_s_per_million")
    if emb_cpu:
        total = median(emb_cpu)
        out.append({"figure": "dispatcher_cpu", "what": "embedded, total (SQLite included)",
                    "cpu_s_per_million": round(total, 3), "runs": emb_cpu})  # fmt: skip
        share = (profiled or {}).get("profile", {}).get("storage_share")
        if share is not None:
            out.append({
                "figure": "dispatcher_cpu",
                "what": "embedded, excluding storage (profile's storage share removed)",
                "cpu_s_per_million": round(total * (1 - share), 3),
                "storage_share": share,
            })  # fmt: skip
    http_cpu = values_of(http, "dispatcher_cpu_s_per_million")
    if http_cpu:
        out.append(
            {
                "figure": "dispatcher_cpu",
                "what": "HTTP target (server in its own process)",
                "cpu_s_per_million": round(median(http_cpu), 3),
                "runs": http_cpu,
            }
        )
    return out


def print_profile(profile: dict[str, Any] | None) -> None:
    """The dispatcher's frames with the most self time, after the target table."""
    if profile and profile.get("top_self"):
        print()
        print(f"dispatcher profile (py-spy, {profile['samples']} samples, "
              f"{profile.get('cpu_us_per_point', '?')} CPU-µs per point; storage share "
              f"{profile['storage_share']:.0%}): top self time")  # fmt: skip
        per = "cpu_us_per_point" if "cpu_us_per_point" in profile else "sampled_us_per_point"
        for f in profile["top_self"]:
            print(f"  {f['share']:>6.1%}  {f[per]:>7.3f} µs/point  {f['frame']}")
    elif profile:
        print(f"\ndispatcher profile: {profile.get('note')}")
