"""The ``metrana`` command line: status, runs, export, demo, serve, keys, login, sync.

Exit codes: 0 success, 1 failure (the message says why, on stderr), 2 usage error, 130 when
interrupted. Progress bars go to stderr, so stdout carries only data (``--json`` documents,
exported points).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import msgspec
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .._config import default_store_path, metrana_home
from .._errors import MetranaError
from ..api._routes import DEFAULT_MAX_BODY_BYTES
from ..storage import PointRow, SqliteStore, StorageError


def _add_store_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", default=default_store_path(), help="SQLite store (default: %(default)s)"
    )


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
    _print_table(header, rows)
    return 0


def stderr_progress() -> Progress:
    """A rich progress display on stderr (stdout stays clean for data)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


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
    store = _open_store(args.store)
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


def cmd_status(args: argparse.Namespace) -> int:
    from ..session import SessionStatus, collect_status
    from ._status import EMPTY_MESSAGE, render_status

    encoder = msgspec.json.Encoder()
    if args.watch is None:
        sessions = collect_status()
        if args.json:
            sys.stdout.write(encoder.encode(sessions).decode() + "\n")
        elif not sessions:
            print(EMPTY_MESSAGE)
        else:
            _console().print(render_status(sessions))
        return 0

    from rich.live import Live

    previous: dict[str, SessionStatus] = {}
    try:
        if args.json:  # one JSON document per line, per refresh
            while True:
                sessions = collect_status(previous=previous)
                sys.stdout.write(encoder.encode(sessions).decode() + "\n")
                sys.stdout.flush()
                previous = {s.key: s for s in sessions}
                time.sleep(args.watch)
        console = _console()
        sessions = collect_status()
        if not console.is_terminal:  # a pipe or a file: one snapshot per refresh
            while True:
                console.print(render_status(sessions))
                console.file.flush()
                time.sleep(args.watch)
                previous = {s.key: s for s in sessions}
                sessions = collect_status(previous=previous)
                console.print()
        with Live(render_status(sessions), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(args.watch)
                previous = {s.key: s for s in sessions}
                sessions = collect_status(previous=previous)
                live.update(render_status(sessions), refresh=True)
    except KeyboardInterrupt:
        return 0


def _console() -> Console:
    """stdout, with long lines (paths) left whole; on a pipe or a file, wide enough that no
    table is cut."""
    if sys.stdout.isatty():
        return Console(highlight=False, soft_wrap=True)
    return Console(highlight=False, soft_wrap=True, width=200)


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(ranks=args.ranks, steps=args.steps, workers=args.workers)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from ..server import serve
    except ImportError as error:
        raise SystemExit(
            f"metrana serve needs the server extra ({error.name} is missing): "
            "pip install 'metrana[server]'"
        ) from None

    serve(args.store, host=args.host, port=args.port, max_body_bytes=args.max_body_bytes)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    # create may start a new store (for a new server); list and revoke need an existing one
    store = SqliteStore(args.store) if args.keys_command == "create" else _open_store(args.store)
    if args.keys_command == "create":
        info, secret = store.create_api_key(args.workspace, args.name)
        if args.json:
            payload = {**msgspec.structs.asdict(info), "secret": secret}
            print(msgspec.json.encode(payload).decode())
        else:
            print(f"API key {info.prefix}… for workspace {info.workspace!r} (shown once):")
            print(secret)
        return 0
    if args.keys_command == "revoke":
        info = store.revoke_api_key(args.key)
        if args.json:
            print(msgspec.json.encode(info).decode())
        else:
            print(f"revoked API key {info.id} ({info.prefix}…, workspace {info.workspace!r})")
        return 0
    keys = store.list_api_keys()
    if args.json:
        print(msgspec.json.encode(keys).decode())
        return 0
    header = ("ID", "PREFIX", "WORKSPACE", "NAME", "STATE")
    rows = [
        (str(k.id), k.prefix + "…", k.workspace, k.name, "revoked" if k.revoked else "active")
        for k in keys
    ]
    _print_table(header, rows)
    return 0


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def cmd_login(args: argparse.Namespace) -> int:
    from ..api import Client
    from ..api._auth import save_credentials

    with Client(args.api_key, host=args.host) as client:
        status = client.auth_status()
    path = save_credentials(args.host, args.api_key)
    print(f"logged in to {args.host} as {status.key_name!r} (workspace {status.workspace_name!r})")
    print(f"credentials saved to {path}; use Client('local')")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    import os
    import time

    from ..dispatcher._sync import sync_spools
    from ..session import recover_orphans

    # Rings left in /dev/shm by a job whose processes all died: a dispatcher delivers them
    # (or spools them, if the server is down) before the spools are replayed.
    recovered = recover_orphans()
    if recovered:
        print(f"delivering the rings of {len(recovered)} orphaned session(s)", file=sys.stderr)
        deadline = time.monotonic() + 300
        while any(s.dispatcher_alive() for s in recovered) and time.monotonic() < deadline:
            time.sleep(0.1)

    with _spool_progress() as progress:
        results = sync_spools(
            metrana_home(),
            url=args.url,
            api_key=args.api_key or os.environ.get("METRANA_API_KEY"),
            run_name=args.run,
            progress=progress,
        )
    if args.json:
        print(msgspec.json.encode(results).decode())
        return 0
    if not results:
        print("nothing to sync")
    for result in results:
        state = f" ({result.skipped})" if result.skipped else ""
        print(
            f"{result.run_name}: {result.points:,} points in {result.batches} batches, "
            f"{result.accepted:,} stored, {result.duplicates:,} already stored, "
            f"{result.rejected:,} rejected{state}"
        )
    return 1 if any(r.skipped and r.skipped.startswith("stopped") for r in results) else 0


def _spool_run_name(spool: str) -> str:
    from ..dispatcher._spool import Spool

    try:
        return Spool(Path(spool)).read_run().run.run_name
    except (OSError, msgspec.DecodeError):
        return Path(spool).name[:12]


@contextmanager
def _spool_progress() -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback for ``sync_spools``: one bar per spool, shown from the first batch
    (nothing at all when there is nothing to sync)."""
    progress: Progress | None = None
    tasks: dict[str, TaskID] = {}

    def update(spool: str, sent: int, total: int) -> None:
        nonlocal progress
        if progress is None:
            progress = stderr_progress()
            progress.start()
        if spool not in tasks:
            tasks[spool] = progress.add_task(f"sync {_spool_run_name(spool)}", total=total)
        progress.update(tasks[spool], completed=sent, total=total)

    try:
        yield update
    finally:
        if progress is not None:
            progress.stop()


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"the refresh interval must be > 0, not {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metrana",
        description="Multiprocess-safe metrics tracking for ML and RL training.",
        epilog="Exit codes: 0 ok, 1 failure, 2 usage error, 130 interrupted.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:])

    status = command("status", "show every Metrana session on this host")
    status.description = (
        "Show every Metrana session on this host: its run and target, the dispatcher (pid, "
        "health, log file) and each writer process (pid, rank, alive, ring fill, logged, "
        "delivered, pending, dropped by reason), with points/s and delivery errors."
    )
    status.add_argument(
        "--json", action="store_true", help="print one JSON document (a list of sessions)"
    )
    status.add_argument(
        "--watch",
        nargs="?",
        type=_positive_seconds,
        const=1.0,
        default=None,
        metavar="SECONDS",
        help="refresh every SECONDS (default 1) until Ctrl-C; with --json, one document a line",
    )
    status.set_defaults(func=cmd_status)

    runs = command("runs", "list the runs in the store")
    _add_store_arg(runs)
    runs.add_argument("--json", action="store_true", help="print JSON")
    runs.set_defaults(func=cmd_runs)

    export = command("export", "export every point of a run (JSON lines or CSV)")
    _add_store_arg(export)
    export.add_argument("--workspace", required=True, help="the run's workspace")
    export.add_argument("--project", required=True, help="the run's project")
    export.add_argument("--run", required=True, help="the run's name")
    export.add_argument("--experiment", default=None, help="experiment_name, if the run has one")
    export.add_argument(
        "--format", choices=("jsonl", "csv"), default="jsonl", help="output format (%(default)s)"
    )
    export.add_argument(
        "--output", default=None, help="file to write, with a progress bar (default: stdout)"
    )
    export.set_defaults(func=cmd_export)

    demo = command("demo", "run a simulated multi-process training job")
    demo.add_argument("--ranks", type=_positive_int, default=4, help="spawned ranks (%(default)s)")
    demo.add_argument(
        "--steps", type=_positive_int, default=25_000, help="training steps per rank (%(default)s)"
    )
    demo.add_argument(
        "--workers",
        type=_positive_int,
        default=2,
        help="environment workers forked by each rank (%(default)s)",
    )
    demo.set_defaults(func=cmd_demo)

    serve = command("serve", "serve a store over HTTP (REST API and ingestion)")
    _add_store_arg(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    serve.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="largest request body, in bytes (%(default)s)",
    )
    serve.set_defaults(func=cmd_serve)

    keys = command("keys", "manage the workspace API keys of a store")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser(
        "create",
        help="create an API key (the secret is shown once)",
        description="Create an API key (the secret is shown once).",
    )
    create.add_argument("--workspace", default="default", help="workspace (%(default)s)")
    create.add_argument("--name", default="cli", help="a name for the key (%(default)s)")
    listing = keys_sub.add_parser(
        "list",
        help="list API keys (never their secrets)",
        description="List API keys (never their secrets).",
    )
    revoke = keys_sub.add_parser(
        "revoke", help="revoke an API key at once", description="Revoke an API key at once."
    )
    revoke.add_argument("key", help="the key's id or prefix")
    for action in (create, listing, revoke):
        _add_store_arg(action)
        action.add_argument("--json", action="store_true", help="print JSON")
    keys.set_defaults(func=cmd_keys)

    login = command("login", "save a server and API key for Client('local')")
    login.add_argument("--host", required=True, help="server URL, e.g. http://127.0.0.1:8765")
    login.add_argument("--api-key", required=True, help="a workspace API key of that server")
    login.set_defaults(func=cmd_login)

    sync = command("sync", "deliver spooled batches (after an outage, or offline)")
    sync.add_argument("--run", default=None, help="only this run_name")
    sync.add_argument("--url", default=None, help="server to deliver to (required if offline)")
    sync.add_argument("--api-key", default=None, help="workspace API key (or METRANA_API_KEY)")
    sync.add_argument("--json", action="store_true", help="print JSON")
    sync.set_defaults(func=cmd_sync)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # a usage error exits with 2
    try:
        code: int = args.func(args)
    except (MetranaError, StorageError) as error:
        print(f"metrana: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("metrana: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
