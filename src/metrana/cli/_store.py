"""The commands that read a store: ``metrana runs`` and ``metrana export``."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

import msgspec

from ..storage import PointRow, Store, is_database_url
from ._console import print_table, stderr_progress


def open_store(path: str) -> Store:
    """The store at ``path`` (a SQLite file or a ``postgresql://`` URL); exits with a
    message when there is no such file."""
    from ..storage import open_store as open_location

    if not is_database_url(path) and not Path(path).exists():
        raise SystemExit(f"metrana: no store at {path} (log something first, or pass --store)")
    return open_location(path)


def cmd_runs(args: argparse.Namespace) -> int:
    """``metrana runs``: list the runs in the store."""
    store = open_store(args.store)
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
    print_table(header, rows)
    return 0


def _counted(points: Iterable[PointRow], advance: Callable[[int], None]) -> Iterator[PointRow]:
    """Yield ``points``, reporting progress every few thousand (cheap on big exports)."""
    pending = 0
    for point in points:
        yield point
        pending += 1
        if pending == 5_000:
            advance(pending)
            pending = 0
    if pending:
        advance(pending)


def _write_points(points: Iterable[PointRow], fmt: str, out: IO[str]) -> int:
    """Write points as JSON lines or CSV; return how many were written."""
    written = 0
    if fmt == "jsonl":
        encoder = msgspec.json.Encoder()
        for point in points:
            written += 1
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
        return written
    writer = csv.writer(out)
    writer.writerow(["metric", "scale", "labels", "step", "value", "timestamp_ns"])
    label_encoder = msgspec.json.Encoder(order="sorted")
    for point in points:
        written += 1
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
    return written


def cmd_export(args: argparse.Namespace) -> int:
    """``metrana export``: every point of a run, as JSON lines or CSV (to stdout, or to a
    file with a progress bar)."""
    store = open_store(args.store)
    run = store.find_run(args.workspace, args.project, args.run, args.experiment)
    if run is None:
        print(
            f"metrana: no run {args.workspace}/{args.project}/{args.run} in {args.store}",
            file=sys.stderr,
        )
        return 1
    points = store.points(run.experiment_id)
    if args.output:
        with open(args.output, "w", newline="") as out, stderr_progress() as progress:
            task = progress.add_task(f"exporting {run.run_name}", total=run.points)
            written = _write_points(
                _counted(points, lambda n: progress.advance(task, n)), args.format, out
            )
            progress.update(task, total=written, completed=written)
        print(f"exported {written:,} points to {args.output}", file=sys.stderr)
    else:
        _write_points(points, args.format, sys.stdout)
    return 0
