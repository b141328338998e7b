"""``python -m stress bench``: the sections in order, one JSON line per figure, then the
target rows, the plot and the table."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bulk import ARRAY_VALUES, bench_bulk_calls
from .common import ROOT, end_to_end_what, median_runs
from .context import Bench
from .dashboard import bench_dashboard
from .dispatcher import dispatcher_cpu_figures, print_profile
from .environment import machine_at_end, machine_at_start
from .faulted import bench_faulted
from .integrations import bench_integrations
from .latency import bench_latency
from .memory import bench_memory, peak_rss_figures
from .plotting import plot
from .postgres import bench_postgres
from .report import evaluate, find_figure, markdown_table, print_table
from .rest import bench_rest
from .scale import bench_idle_rings, scale_curve
from .startup import bench_import, bench_start_stop
from .throughput import bench_queue_baseline, bench_throughput

SECTIONS = (
    "import", "latency", "bulk", "faulted", "startstop", "memory", "queue", "embedded",
    "profile", "http", "bulk-embedded", "bulk-http", "scale", "idle", "rest", "integrations",
    "dashboard", "postgres",
)  # fmt: skip
DEFAULT_PLOT = str(ROOT / "docs" / "perf" / "throughput.png")

Emit = Callable[..., None]


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each section measures: from the command line, or toy sizes for --quick."""

    writers: int
    points: int
    calls: int
    repeat: int
    http_points: int
    scale_points: int
    idle_rings: int
    idle_points: int
    scale: list[int]
    memory_points: int
    startstop_repeat: int
    queue_points: int
    fault_calls: int
    import_repeat: int
    latency_repeat: int
    bulk_call_points: int
    bulk_points: int
    bulk_http_points: int
    rest_events: int
    rest_series_points: int
    integration_steps: int
    integration_repeat: int
    compare_points: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Sizes:
        """The sizes of ``python -m stress bench``'s options."""
        sizes = cls(
            writers=args.writers,
            points=args.points,
            calls=args.calls,
            repeat=args.repeat,
            http_points=args.http_points,
            scale_points=args.scale_points,
            idle_rings=args.idle_rings,
            idle_points=args.idle_points,
            scale=[int(x) for x in args.scale.split(",") if x],
            memory_points=200_000,  # twice the default ring (100,000 events): every page touched
            startstop_repeat=5,
            queue_points=max(1, args.points // 5),
            fault_calls=min(args.calls, 25_000),  # 3 runs stay below the ring's 100,000
            import_repeat=max(3, args.repeat + 2),
            latency_repeat=max(args.repeat, 5),
            bulk_call_points=args.bulk_call_points,
            bulk_points=args.bulk_points,
            bulk_http_points=args.bulk_http_points,
            rest_events=100_000,
            rest_series_points=1_000_000,
            integration_steps=500,
            integration_repeat=max(args.repeat, 7),
            compare_points=100_000,
        )
        if not args.quick:
            return sizes
        return dataclasses.replace(
            sizes,
            writers=2, points=5_000, calls=5_000, repeat=1, http_points=5_000, scale_points=8_000,
            idle_rings=4, idle_points=5_000, scale=[1, 2], memory_points=20_000,
            startstop_repeat=1, queue_points=5_000, fault_calls=2_000, import_repeat=2,
            latency_repeat=1, bulk_call_points=20_480, bulk_points=102_400,
            bulk_http_points=51_200, rest_events=2_000, rest_series_points=20_000,
            integration_steps=30, integration_repeat=1, compare_points=5_000,
        )  # fmt: skip


def _plot_path(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    """Where the plot goes, and a scratch directory to remove afterwards: a --quick run
    without --plot draws into a temporary directory, never into docs/."""
    if args.no_plot:
        return None, None
    if args.quick and args.plot is None:
        scratch = Path(tempfile.mkdtemp(prefix="metrana-bench-plot-"))
        return scratch / "throughput.png", scratch
    return Path(args.plot or DEFAULT_PLOT), None


def _measure(bench: Bench, sizes: Sizes, sections: set[str], emit: Emit) -> None:
    """Every chosen section in order, each figure emitted as soon as it is measured."""
    writers, repeat = sizes.writers, sizes.repeat
    if "import" in sections:
        emit(*bench_import(sizes.import_repeat))
    if "latency" in sections:
        emit(*bench_latency(bench, sizes.calls, sizes.latency_repeat))
    if "bulk" in sections:
        emit(*bench_bulk_calls(bench, sizes.bulk_call_points, sizes.latency_repeat))
    if "startstop" in sections:
        emit(*bench_start_stop(bench, sizes.startstop_repeat))
    if "memory" in sections:
        emit(bench_memory(bench, sizes.memory_points))
    if "faulted" in sections:
        emit(*bench_faulted(bench, sizes.fault_calls, repeat))
    if "queue" in sections:
        emit(bench_queue_baseline(writers, sizes.queue_points))
    embedded_runs: list[dict[str, Any]] = []
    if "embedded" in sections:
        embedded_runs = [bench_throughput(bench, writers, sizes.points) for _ in range(repeat)]
        emit(median_runs(embedded_runs, end_to_end_what(writers, http=False)))
    profiled = None
    if "profile" in sections:
        profiled = bench_throughput(
            bench, writers, sizes.points, profile=True, label=" (profiled, not in the medians)"
        )
        emit({k: v for k, v in profiled.items() if k != "profile"})
        emit({"figure": "profile", "what": "dispatcher, py-spy self time",
              **profiled.get("profile", {"note": "no dispatcher found"})})  # fmt: skip
    http_runs: list[dict[str, Any]] = []
    if "http" in sections:
        http_runs = [
            bench_throughput(bench, writers, sizes.http_points, http=True) for _ in range(repeat)
        ]
        emit(median_runs(http_runs, end_to_end_what(writers, http=True)))
    for section, http, points in (
        ("bulk-embedded", False, sizes.bulk_points),
        ("bulk-http", True, sizes.bulk_http_points),
    ):
        if section in sections:
            runs = [
                bench_throughput(bench, writers, points, http=http, array=ARRAY_VALUES)
                for _ in range(repeat)
            ]
            emit(median_runs(runs, end_to_end_what(writers, http, ARRAY_VALUES)))
    emit(
        *dispatcher_cpu_figures(embedded_runs, http_runs, profiled),
        *peak_rss_figures(embedded_runs, http_runs),
    )
    if "scale" in sections:
        for figure in scale_curve(bench, sizes.scale, sizes.scale_points, repeat):
            emit(figure)
    if "idle" in sections:
        emit(bench_idle_rings(bench, writers, sizes.idle_points, sizes.idle_rings, repeat))
    if "rest" in sections:
        emit(*bench_rest(bench, sizes.rest_events, sizes.rest_series_points, max(repeat, 5)))
    if "integrations" in sections:
        bench.fresh("integrations")
        emit(*bench_integrations(sizes.integration_steps, sizes.integration_repeat))
    if "dashboard" in sections:
        emit(*bench_dashboard(bench, sizes.rest_series_points, repeat))
    if "postgres" in sections:
        emit(*bench_postgres(bench, writers, sizes.http_points, sizes.compare_points, repeat))


def run(args: argparse.Namespace) -> int:
    """``python -m stress bench``: measure the sections of ``--only`` (all by default), then
    report. Answers 0 if every figure is ok, 1 if one is not, 2 for an unknown section."""
    sizes = Sizes.from_args(args)
    sections = set(args.only.split(",")) if args.only else set(SECTIONS)
    if args.quick or args.no_profile:
        sections.discard("profile")
    unknown = sections - set(SECTIONS)
    if unknown:
        print(f"unknown sections: {sorted(unknown)}; known: {SECTIONS}", file=sys.stderr)
        return 2

    bench = Bench()
    plot_path, scratch = _plot_path(args)
    results: list[dict[str, Any]] = []

    def emit(*figures: dict[str, Any]) -> None:
        for figure in figures:
            results.append(figure)
            line = json.dumps(figure, ensure_ascii=False)
            print(line, flush=True)
            if args.json:
                with open(args.json, "a") as out:
                    out.write(line + "\n")

    emit(machine_at_start(bool(args.quick), sizes.repeat))
    started = time.monotonic()
    try:
        _measure(bench, sizes, sections, emit)
    finally:
        bench.cleanup()
    emit(machine_at_end(started))
    rows = evaluate(results, sizes.writers)
    emit(*rows)
    if plot_path is not None:
        emit({"figure": "plot", "what": "throughput vs writers", "path": plot(results,
              sizes.writers, plot_path)})  # fmt: skip
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.markdown:
        Path(args.markdown).write_text(markdown_table(rows))
    print()
    print_table(rows)
    print_profile(find_figure(results, "profile"))
    ok = all(r.get("ok", True) for r in results)
    return 0 if ok else 1
