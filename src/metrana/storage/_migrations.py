"""Schema versions of a store, applied in order when it is opened.

``SCHEMA`` (``_sqlite_schema``, with ``_chunks.SCHEMA``) is the current version's tables. A new
store gets them at once. A store made by an earlier release (its version in SQLite's
``user_version``; 0 for the first release, which had none) is first brought up to date here,
one migration per version, in the same transaction that then runs ``SCHEMA``, losing nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from ..api._types import DEFAULT_INGESTION_KEY_TTL_MS
from ._db import Connection

__all__ = ["SCHEMA_VERSION", "migrate"]

_STATUS_V3 = {"finished": "done", "running": "running"}  # every other one became "error"


def _ingestion_key_lifetimes(conn: Connection) -> None:
    """Version 2: ingestion keys expire, and say when they were last used. A key made before
    gets the default lifetime from its creation (a dispatcher whose key expires mints
    another)."""
    conn.execute("ALTER TABLE ingestion_keys ADD COLUMN expires_ns INTEGER")
    conn.execute("ALTER TABLE ingestion_keys ADD COLUMN last_used_ns INTEGER")
    conn.execute(
        "UPDATE ingestion_keys SET expires_ns = created_ns + ? WHERE expires_ns IS NULL",
        (DEFAULT_INGESTION_KEY_TTL_MS * 1_000_000,),
    )


def _organizations(conn: Connection) -> None:
    """Version 3: the data model of the Syvain API.

    * Each workspace becomes an organization of the same name (its keys keep seeing exactly
      what they saw) holding one top-level folder of that name, under which its projects move:
      a run's folder path stays ``workspace/project[/experiment_name]``.
    * Experiments have a slug (the run name), may live outside any folder, and have the
      statuses created/running/done/error with lifecycle times in ms: ``finished`` becomes
      ``done``; ``crashed``, ``failed`` and ``cancelled`` become ``error`` named after them.
    * An annotation's step moves into its metadata; chunks record when they were stored.
    """
    conn.execute("ALTER TABLE workspaces RENAME TO organizations")
    conn.execute("ALTER TABLE folders RENAME COLUMN workspace_id TO org_id")
    conn.execute("ALTER TABLE api_keys RENAME COLUMN workspace_id TO org_id")
    conn.execute("DROP INDEX IF EXISTS folders_by_name")
    for org_id, name, created_ns in conn.execute(
        "SELECT id, name, created_ns FROM organizations"
    ).fetchall():
        cursor = conn.execute(
            "INSERT INTO folders (org_id, parent_id, name, created_ns) VALUES (?, NULL, ?, ?)",
            (org_id, name, created_ns),
        )
        top = int(cursor.lastrowid or 0)
        conn.execute(
            "UPDATE folders SET parent_id=? WHERE org_id=? AND parent_id IS NULL AND id<>?",
            (top, org_id, top),
        )
    # experiments: rebuilt, for folder_id becomes nullable. The references to the table from
    # series, keys and annotations hold (ids are kept): the checks wait for the commit, and
    # the rows go in after the old table is dropped, so that each one satisfies them again.
    rows = conn.execute(
        "SELECT id, workspace_id, folder_id, name, description, metadata, status, "
        "orchestration_id, created_ns, updated_ns FROM experiments"
    ).fetchall()
    conn.execute("PRAGMA defer_foreign_keys = ON")
    conn.execute(
        "CREATE TABLE experiments_v3 (id INTEGER PRIMARY KEY, "
        "org_id INTEGER NOT NULL REFERENCES organizations(id), "
        "folder_id INTEGER REFERENCES folders(id), slug TEXT NOT NULL, "
        "description TEXT NOT NULL DEFAULT '', "
        "metadata TEXT NOT NULL DEFAULT '{}', status TEXT NOT NULL, error_name TEXT, "
        "error_detail TEXT, orchestration_id TEXT, created_ms INTEGER NOT NULL, "
        "updated_ms INTEGER NOT NULL, started_ms INTEGER, done_ms INTEGER, "
        "last_heartbeat_ms INTEGER, last_event_ms INTEGER)"
    )
    conn.execute("DROP TABLE experiments")
    conn.execute("ALTER TABLE experiments_v3 RENAME TO experiments")
    for row in rows:
        (experiment_id, org_id, folder_id, slug, description, metadata, status, owner,
         created_ns, updated_ns) = row  # fmt: skip
        created, updated = created_ns // 1_000_000, updated_ns // 1_000_000
        new_status = _STATUS_V3.get(status, "error")
        error_name = None if new_status != "error" else str(status).capitalize()
        done = None if new_status == "running" else updated
        conn.execute(
            "INSERT INTO experiments (id, org_id, folder_id, slug, description, metadata, "
            "status, error_name, error_detail, orchestration_id, created_ms, updated_ms, "
            "started_ms, done_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (experiment_id, org_id, folder_id, slug, description, metadata, new_status,
             error_name, "" if error_name else None, owner, created, updated, created, done),
        )  # fmt: skip
    conn.execute(
        "UPDATE annotations SET metadata = json_set(metadata, '$.step', step) "
        "WHERE step IS NOT NULL AND json_extract(metadata, '$.step') IS NULL"
    )
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name='chunks'").fetchone():
        conn.execute("ALTER TABLE chunks ADD COLUMN stored_ms INTEGER")


def _dashboard_logins(conn: Connection) -> None:
    """Version 4: the dashboard's login tokens and sessions are rows (``login_tokens``,
    ``dashboard_sessions``), so that a restart keeps browsers logged in and replicas share
    them. New tables only, which ``SCHEMA`` creates: nothing stored before changes shape."""


def _experiment_keys(conn: Connection) -> None:
    """Version 5: the large tables reached through their experiment, so that PostgreSQL's can be
    distributed by it. A chunk records its series' experiment: a column added and filled in,
    the key kept (rebuilding a large WITHOUT ROWID table at open costs more: see
    docs/deployment.md). A producer's batch is keyed by experiment first: its table (small)
    rebuilt, the batches recorded before with experiment 0, which ``_points`` still finds."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name='chunks'").fetchone():
        conn.execute("ALTER TABLE chunks ADD COLUMN experiment_id INTEGER NOT NULL DEFAULT 0")
        conn.execute(
            "UPDATE chunks SET experiment_id = "
            "IFNULL((SELECT s.experiment_id FROM series s WHERE s.id = chunks.series_id), 0)"
        )
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name='producer_batches'").fetchone():
        conn.execute("ALTER TABLE producer_batches RENAME TO producer_batches_v4")
        conn.execute(
            "CREATE TABLE producer_batches (experiment_id INTEGER NOT NULL, "
            "producer_id TEXT NOT NULL, sequence INTEGER NOT NULL, accepted INTEGER NOT NULL, "
            "duplicates INTEGER NOT NULL, PRIMARY KEY (experiment_id, producer_id, sequence)"
            ") WITHOUT ROWID"
        )
        conn.execute(
            "INSERT INTO producer_batches (experiment_id, producer_id, sequence, accepted, "
            "duplicates) SELECT 0, producer_id, sequence, accepted, duplicates "
            "FROM producer_batches_v4"
        )
        conn.execute("DROP TABLE producer_batches_v4")


# MIGRATIONS[n] takes a store from version n + 1 to version n + 2.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (
    _ingestion_key_lifetimes,
    _organizations,
    _dashboard_logins,
    _experiment_keys,
)
SCHEMA_VERSION = 1 + len(MIGRATIONS)


def migrate(conn: Connection, schema: str) -> int:
    """Bring the store to the current version inside the caller's write transaction: the
    migrations it lacks, then ``schema`` (the current tables, created where missing). Answer
    the version it had (0 for a store without one, and for a new store)."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        from ._base import StorageError

        raise StorageError(
            f"this store has schema version {found}, newer than this Metrana's "
            f"({SCHEMA_VERSION}): upgrade Metrana to open it"
        )
    made_before = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name IN ('workspaces', 'experiments')"
    ).fetchone()
    if made_before is not None:
        for version in range(max(found, 1), SCHEMA_VERSION):
            MIGRATIONS[version - 1](conn)
    for statement in schema.split(";"):
        if statement.strip():
            conn.execute(statement)
    if found != SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return found
