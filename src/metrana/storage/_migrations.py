"""Schema versions of a store, applied in order when it is opened.

``SCHEMA`` (``_sqlite_schema``) creates the tables of version 1, the first that was released;
each later version is a migration here, recorded in SQLite's ``user_version``. A store made by
any earlier release is brought up to date at open, in the same transaction that creates the
tables, losing nothing; a new store runs the same steps.
"""

from __future__ import annotations

from collections.abc import Callable

from ..api._types import DEFAULT_INGESTION_KEY_TTL_MS
from ._db import Connection

__all__ = ["SCHEMA_VERSION", "migrate"]


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


# MIGRATIONS[n] takes a store from version n + 1 to version n + 2.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_ingestion_key_lifetimes,)
SCHEMA_VERSION = 1 + len(MIGRATIONS)


def migrate(conn: Connection) -> int:
    """Apply the migrations a store lacks, inside the caller's write transaction; answer the
    version it had (0 for a store without one, as every store before version 2 was)."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        from ._base import StorageError

        raise StorageError(
            f"this store has schema version {found}, newer than this Metrana's "
            f"({SCHEMA_VERSION}): upgrade Metrana to open it"
        )
    for version in range(max(found, 1), SCHEMA_VERSION):
        MIGRATIONS[version - 1](conn)
    if found != SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return found
