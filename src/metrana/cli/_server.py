"""The commands of a server and its clients: ``metrana serve`` and ``metrana keys`` (on a
store), ``metrana login`` (to a server) and ``metrana sync`` (spooled batches to a server)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import msgspec
from rich.progress import Progress, TaskID

from .._config import metrana_home
from ..storage import open_store as open_location
from ._console import print_table, stderr_progress
from ._store import open_store


def cmd_serve(args: argparse.Namespace) -> int:
    """``metrana serve``: serve a store over HTTP until interrupted."""
    _server_module("serve").serve(
        args.store,
        host=args.host,
        port=args.port,
        max_body_bytes=args.max_body_bytes,
        ingestion_key_ttl_ms=round(args.ingestion_key_ttl * 1000),
    )
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """``metrana ui``: serve the local store on loopback and open the dashboard, logged in."""
    _server_module("ui").serve(args.store, host="127.0.0.1", port=args.port, browse=True)
    return 0


def _server_module(command: str) -> ModuleType:
    try:
        from .. import server
    except ImportError as error:
        raise SystemExit(
            f"metrana {command} needs the server extra ({error.name} is missing): "
            "pip install 'metrana[server]'"
        ) from None
    return server


def cmd_keys(args: argparse.Namespace) -> int:
    """``metrana keys create|list|revoke``: the organizations' API keys of a store."""
    # create may start a new store (for a new server); list and revoke need an existing one
    store = open_location(args.store) if args.keys_command == "create" else open_store(args.store)
    if args.keys_command == "create":
        info, secret = store.create_api_key(args.org, args.name)
        if args.json:
            payload = {**msgspec.structs.asdict(info), "secret": secret}
            print(msgspec.json.encode(payload).decode())
        else:
            print(f"API key {info.prefix}… of organization {info.organization!r} (shown once):")
            print(secret)
        return 0
    if args.keys_command == "revoke":
        info = store.revoke_api_key(args.key)
        if args.json:
            print(msgspec.json.encode(info).decode())
        else:
            print(f"revoked API key {info.id} ({info.prefix}…, organization {info.organization!r})")
        return 0
    keys = store.list_api_keys()
    if args.json:
        print(msgspec.json.encode(keys).decode())
        return 0
    header = ("ID", "PREFIX", "ORGANIZATION", "NAME", "STATE")
    rows = [
        (str(k.id), k.prefix + "…", k.organization, k.name, "revoked" if k.revoked else "active")
        for k in keys
    ]
    print_table(header, rows)
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    """``metrana login``: check an API key with its server, then save both in the Syvain CLI's
    ``auth.json`` for ``Client("local")`` (and the Syvain client's ``"local"``)."""
    from ..api import Client
    from ..api._auth import save_credentials

    with Client(args.api_key, host=args.host) as client:
        organization = client.auth_status().organization
        path = save_credentials(client.host, client.api_key, organization.id)
    name = f"{organization.name!r} " if organization.name else ""
    print(f"logged in to {args.host}: organization {name}(id {organization.id})")
    print(f"credentials saved to {path}; use Client('local')")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """``metrana sync``: deliver the rings of orphaned sessions, then every spool; exits 1
    when a spool had to stop."""
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
