"""The PostgreSQL storage engine: the store of several stateless server replicas.

The facade is :class:`~._store.Store`'s and the resource modules are SQLite's, spoken through
``_postgres_dialect``; this engine adds a connection pool (``psycopg_pool``), transactions
and the schema (``_postgres_schema``, with the migration of an older one), applied at start
under an advisory lock, so that replicas starting together migrate once.

Nothing that decides an answer lives in a replica's memory: keys, idempotency records,
producer batches and client event ids are rows. Writers of one experiment take turns on its
row (``FOR UPDATE``), so each (series, step) is stored once and the first write wins, as in
SQLite. A request acting on an Idempotency-Key holds a transaction-scoped advisory lock on
it: a repeat meanwhile, on any replica, is told to retry (409). A lost connection or a
database that is down is a StorageError (the server answers 503, the dispatcher retries).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ._base import StorageError
from ._db import Connection
from ._migrations import SCHEMA_VERSION
from ._points import SeriesIds
from ._postgres_dialect import PgConnection
from ._postgres_schema import MIGRATE_TO_5, SCHEMA
from ._store import Store

__all__ = ["PostgresStore"]

# pg_advisory_xact_lock's key for schema migrations ("metrana" in ASCII)
MIGRATION_LOCK = 0x6D657472616E61


def _hide_password(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def _lock_key(scope: str, key: str) -> int:
    """A signed 64-bit advisory lock key for an Idempotency-Key of a scope."""
    digest = hashlib.blake2b(f"{scope}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresStore(Store):
    """A pool of connections to a PostgreSQL database; safe to share between threads."""

    def __init__(
        self, url: str, min_size: int = 1, max_size: int = 8, timeout: float = 5.0
    ) -> None:
        self.url = url
        self.location = _hide_password(url)
        self._series_ids = SeriesIds()
        self._local = threading.local()
        self._pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={"autocommit": True},
            check=ConnectionPool.check_connection,
            name="metrana",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except PoolTimeout as error:
            self._pool.close()
            raise StorageError(f"cannot connect to store {self.location}: {error}") from error
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    def _migrate(self) -> None:
        with self.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            found = 0
            if conn.execute("SELECT to_regclass('metrana_schema')").fetchone()[0] is not None:
                row = conn.execute("SELECT MAX(version) FROM metrana_schema").fetchone()
                found = int(row[0] or 0)
            if found > SCHEMA_VERSION:
                raise StorageError(
                    f"this store has schema version {found}, newer than this Metrana's "
                    f"({SCHEMA_VERSION}): upgrade Metrana to open it"
                )
            if found == SCHEMA_VERSION:
                return
            if found:  # the tables of an older schema: the keys they lack
                for statement in MIGRATE_TO_5.split(";"):
                    conn.execute(statement)
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("DELETE FROM metrana_schema")
            conn.execute("INSERT INTO metrana_schema (version) VALUES (?)", (SCHEMA_VERSION,))

    def _held(self) -> PgConnection | None:
        held: PgConnection | None = getattr(self._local, "conn", None)
        return held

    @contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        """One transaction on a pooled connection (READ COMMITTED): committed on success,
        else rolled back; nested calls in the same thread join it. Database failures are
        StorageError."""
        held = self._held()
        if held is not None:
            yield held
            return
        try:
            with self._pool.connection() as raw, raw.transaction():
                conn = PgConnection(raw)
                self._local.conn = conn
                try:
                    yield conn
                except BaseException:
                    self._series_ids.clear()  # before the rollback makes its ids free
                    raise
                finally:
                    self._local.conn = None
        except (psycopg.Error, PoolTimeout) as error:
            self._series_ids.clear()
            raise StorageError(f"store {self.location}: {error}") from error

    @contextmanager
    def reading(self) -> Iterator[PgConnection]:
        """A pooled connection in autocommit, for queries (in a transaction of this thread:
        its connection)."""
        held = self._held()
        if held is not None:
            yield held
            return
        try:
            with self._pool.connection() as raw:
                yield PgConnection(raw)
        except (psycopg.Error, PoolTimeout) as error:
            raise StorageError(f"store {self.location}: {error}") from error

    def _claim(self, conn: Connection, scope: str, key: str) -> bool:
        """Hold the key's advisory lock until the transaction ends, if no one else does."""
        found = conn.execute("SELECT pg_try_advisory_xact_lock(?)", (_lock_key(scope, key),))
        return bool(found.fetchone()[0])

    def close(self) -> None:
        """Close every pooled connection; the store cannot be used after."""
        self._pool.close()
