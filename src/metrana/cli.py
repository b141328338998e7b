"""The ``metrana`` command line: runs, export, demo."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import msgspec

from ._errors import MetranaError
from .storage import PointRow, SqliteStore


def _default_store() -> str:
    import os

    home = os.environ.get("METRANA_HOME") or str(Path.home() / ".metrana")
    return str(Path(home).expanduser() / "store.sqlite")


def _open_store(path: str) -> SqliteStore:
    if not Path(path).exists():
        raise SystemExit(f"metrana: no store at {path} (log something first, or pass --store)")
    return SqliteStore(path)


def cmd_runs(args: argparse.Namespace) -> int:
    store = _open_store(args.store)
    runs = store.runs()
    if args.json:
        sys.stdout.write(msgspec.json.encode(runs).decode() + "\n")
        return 0
    if not runs:
        print("no runs")
        return 0
    header = ("ID", "WORKSPACE", "PROJECT", "RUN", "STATUS", "SERIES", "POINTS")
    rows = [
        (
            str(r.experiment_id),
            r.workspace,
            r.project + (f"/{r.experiment_name}" if r.experiment_name else ""),
            r.run_name,
            r.status,
            str(r.series),
            f"{r.points:,}",
        )
        for r in runs
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


def _write_points(points: list[PointRow], fmt: str, out: IO[str]) -> None:
    if fmt == "jsonl":
        encoder = msgspec.json.Encoder()
        for point in points:
            value = point.value
            record = {
                "metric": point.metric,
                "scale": point.scale,
                "labels": point.labels,
                "step": point.step,
                "value": value if value == value and abs(value) != float("inf") else str(value),
                "timestamp_ns": point.timestamp_ns,
            }
            out.write(encoder.encode(record).decode() + "\n")
        return
    writer = csv.writer(out)
    writer.writerow(["metric", "scale", "labels", "step", "value", "timestamp_ns"])
    label_encoder = msgspec.json.Encoder(order="sorted")
    for point in points:
        writer.writerow(
            [
                point.metric,
                point.scale,
                label_encoder.encode(point.labels).decode(),
                point.step,
                repr(point.value),
                point.timestamp_ns,
            ]
        )


def cmd_export(args: argparse.Namespace) -> int:
    store = _open_store(args.store)
    run = store.find_run(args.workspace, args.project, args.run, args.experiment)
    if run is None:
        print(
            f"metrana: no run {args.workspace}/{args.project}/{args.run} in {args.store}",
            file=sys.stderr,
        )
        return 1
    points = list(store.points(run.experiment_id))
    if args.output:
        with open(args.output, "w", newline="") as out:
            _write_points(points, args.format, out)
        print(f"exported {len(points):,} points to {args.output}", file=sys.stderr)
    else:
        _write_points(points, args.format, sys.stdout)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(ranks=args.ranks, steps=args.steps, workers=args.workers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metrana", description="Multiprocess-safe metrics tracking for ML and RL training."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    runs = sub.add_parser("runs", help="list the runs in the store")
    runs.add_argument(
        "--store", default=_default_store(), help="SQLite store (default: %(default)s)"
    )
    runs.add_argument("--json", action="store_true", help="print JSON")
    runs.set_defaults(func=cmd_runs)

    export = sub.add_parser("export", help="export every point of a run")
    export.add_argument("--store", default=_default_store(), help="SQLite store")
    export.add_argument("--workspace", required=True)
    export.add_argument("--project", required=True)
    export.add_argument("--run", required=True)
    export.add_argument("--experiment", default=None, help="experiment_name, if the run has one")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--output", default=None, help="file to write (default: stdout)")
    export.set_defaults(func=cmd_export)

    demo = sub.add_parser("demo", help="run a simulated multi-process training job")
    demo.add_argument("--ranks", type=int, default=4)
    demo.add_argument("--steps", type=int, default=25_000)
    demo.add_argument("--workers", type=int, default=2)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except MetranaError as error:
        print(f"metrana: {error}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
