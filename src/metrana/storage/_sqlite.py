"""The SQLite storage engine: the embedded store, and the server's default.

WAL mode, one ``BEGIN IMMEDIATE`` transaction per batch; points are stored as columnar chunks
(see ``_chunks``), keyed by (series, step), and the first write wins. The facade is
:class:`~._store.Store`'s; this engine adds the connection, its transactions and the schema
(``_sqlite_schema``, brought up to date by ``_migrations``). The resource modules' SQL is in
SQLite's dialect.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import _chunks, _migrations, _points
from ._base import StorageError
from ._sqlite_schema import SCHEMA
from ._store import Store

__all__ = ["SqliteStore"]


class SqliteStore(Store):
    """One connection to a SQLite store; safe to share between threads (serialised)."""

    def __init__(self, path: str | Path, busy_timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(self.path),
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        self._series_ids = _points.SeriesIds()
        self._depth = 0
        self._setup(busy_timeout)

    def _setup(self, busy_timeout: float) -> None:
        conn = self._conn
        deadline = time.monotonic() + busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise StorageError(f"cannot open store {self.path}: {error}") from error
                time.sleep(0.05)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        with self.transaction():
            _migrations.migrate(conn, SCHEMA + _chunks.SCHEMA)
            _chunks.migrate_point_rows(conn)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): committed on success, else rolled back.

        Nested calls in the same thread join the outer transaction, so that a server request
        and its idempotency record commit together."""
        with self._lock:
            conn = self._conn
            if self._depth:
                self._depth += 1
                try:
                    yield conn
                finally:
                    self._depth -= 1
                return
            conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield conn
            except BaseException:
                self._depth = 0
                conn.execute("ROLLBACK")
                self._series_ids.clear()
                raise
            self._depth = 0
            conn.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, for queries (serialised with writes of this store object)."""
        with self._lock:
            yield self._conn

    @contextmanager
    def _writing_points(self) -> Iterator[sqlite3.Connection]:
        """A transaction whose SQLite errors reach the dispatcher as StorageError; the series
        ids are forgotten after any of them, a failed COMMIT (not rolled back) included."""
        try:
            with self.transaction() as conn:
                yield conn
        except sqlite3.Error as error:
            self._series_ids.clear()
            raise StorageError(f"store {self.path}: {error}") from error

    def close(self) -> None:
        """Close the connection; the store cannot be used after."""
        with self._lock:
            self._conn.close()
