"""The ``metrana`` command line: its parser and ``main()``. The commands live beside it:
``status`` in ``_status``, ``runs`` and ``export`` in ``_store``, ``serve``, ``keys``,
``login``, ``sync`` and ``ui`` in ``_server``, ``demo`` in ``_demo``.

Exit codes: 0 success, 1 failure (the message says why, on stderr), 2 usage error, 130 when
interrupted. Progress bars go to stderr, so stdout carries only data (``--json`` documents,
exported points).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._config import server_store
from .._errors import MetranaError
from ..api._routes import DEFAULT_MAX_BODY_BYTES
from ..api._types import DEFAULT_INGESTION_KEY_TTL_MS, ttl_problem
from ..storage import StorageError
from ._server import cmd_keys, cmd_login, cmd_serve, cmd_sync, cmd_ui
from ._status import cmd_status
from ._store import cmd_export, cmd_runs


def _add_store_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=server_store(),
        help="a SQLite file or a postgresql://user@host/db URL (default: METRANA_STORE, "
        "else %(default)s)",
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """``metrana demo`` (its module, which brings multiprocessing, loads only for it)."""
    from ._demo import run_demo

    return run_demo(ranks=args.ranks, steps=args.steps, workers=args.workers)


def _ingestion_key_ttl(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if seconds < 0.001 or ttl_problem(seconds * 1000):
        raise argparse.ArgumentTypeError(
            f"{text!r} s: an ingestion key lives at least 1 ms and at most 7 days (604800 s)"
        )
    return seconds


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
    """The parser of every command, each with its function as ``func``."""
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
    serve.add_argument(
        "--ingestion-key-ttl",
        type=_ingestion_key_ttl,
        default=DEFAULT_INGESTION_KEY_TTL_MS / 1000,
        metavar="SECONDS",
        help="lifetime of an ingestion key minted without ttl_ms (default: a day; at most 7 "
        "days); a dispatcher whose key expires mints another",
    )
    serve.set_defaults(func=cmd_serve)

    ui = command("ui", "open the dashboard on the local store (served on loopback)")
    _add_store_arg(ui)
    ui.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    ui.set_defaults(func=cmd_ui)

    keys = command("keys", "manage the API keys of a store (each of one organization)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser(
        "create",
        help="create an API key (the secret is shown once)",
        description="Create an API key (the secret is shown once).",
    )
    create.add_argument(
        "--org",
        default="default",
        help="the organization the key opens: every workspace in it (%(default)s)",
    )
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
    login.add_argument("--api-key", required=True, help="an API key of that server")
    login.set_defaults(func=cmd_login)

    sync = command("sync", "deliver spooled batches (after an outage, or offline)")
    sync.add_argument("--run", default=None, help="only this run_name")
    sync.add_argument("--url", default=None, help="server to deliver to (required if offline)")
    sync.add_argument("--api-key", default=None, help="API key (or METRANA_API_KEY)")
    sync.add_argument("--json", action="store_true", help="print JSON")
    sync.set_defaults(func=cmd_sync)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command of ``argv`` (default: ``sys.argv[1:]``); return its exit code."""
    args = build_parser().parse_args(argv)  # a usage error exits with 2
    try:
        code: int = args.func(args)
    except (MetranaError, StorageError) as error:
        print(f"metrana: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("metrana: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`metrana export ... | head`): not an error of ours. Point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    return code


if __name__ == "__main__":
    raise SystemExit(main())
