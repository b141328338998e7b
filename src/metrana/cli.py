"""The ``metrana`` command line: runs, export, demo, serve, keys, login, sync."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import msgspec

from ._config import default_store_path, metrana_home
from ._errors import MetranaError
from .storage import PointRow, SqliteStore, StorageError


def _default_store() -> str:
    return default_store_path()


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


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .server import serve
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
    from .api import Client
    from .api._auth import save_credentials

    with Client(args.api_key, host=args.host) as client:
        status = client.auth_status()
    path = save_credentials(args.host, args.api_key)
    print(f"logged in to {args.host} as {status.key_name!r} (workspace {status.workspace_name!r})")
    print(f"credentials saved to {path}; use Client('local')")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    import os

    from ._sync import sync_spools

    def progress(spool: str, sent: int, total: int) -> None:
        width = 30
        done = width * sent // max(total, 1)
        bar = "#" * done + "." * (width - done)
        print(f"\r{Path(spool).name} [{bar}] {sent:,}/{total:,} points", end="", file=sys.stderr)
        if sent >= total:
            print(file=sys.stderr)

    results = sync_spools(
        metrana_home(),
        url=args.url,
        api_key=args.api_key or os.environ.get("METRANA_API_KEY"),
        run_name=args.run,
        progress=None if args.json else progress,
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

    serve = sub.add_parser("serve", help="serve a store over HTTP (REST API and ingestion)")
    serve.add_argument(
        "--store", default=_default_store(), help="SQLite store (default: %(default)s)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    serve.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    serve.add_argument(
        "--max-body-bytes", type=int, default=32 * 1024 * 1024, help="largest request body"
    )
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="manage the workspace API keys of a store")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create an API key (the secret is shown once)")
    create.add_argument("--workspace", default="default")
    create.add_argument("--name", default="cli")
    listing = keys_sub.add_parser("list", help="list API keys (never their secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke an API key at once")
    revoke.add_argument("key", help="the key's id or prefix")
    for command in (create, listing, revoke):
        command.add_argument("--store", default=_default_store(), help="SQLite store")
        command.add_argument("--json", action="store_true", help="print JSON")
    keys.set_defaults(func=cmd_keys)

    login = sub.add_parser("login", help="save a server and API key for Client('local')")
    login.add_argument("--host", required=True, help="server URL, e.g. http://127.0.0.1:8765")
    login.add_argument("--api-key", required=True)
    login.set_defaults(func=cmd_login)

    sync = sub.add_parser("sync", help="deliver spooled batches (after an outage, or offline)")
    sync.add_argument("--run", default=None, help="only this run_name")
    sync.add_argument("--url", default=None, help="server to deliver to (required if offline)")
    sync.add_argument("--api-key", default=None, help="workspace API key (or METRANA_API_KEY)")
    sync.add_argument("--json", action="store_true", help="print JSON")
    sync.set_defaults(func=cmd_sync)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (MetranaError, StorageError) as error:
        print(f"metrana: {error}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
