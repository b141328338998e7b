"""The SQLite storage engine: the embedded store, and the server's default.

WAL mode, one ``BEGIN IMMEDIATE`` transaction per batch; points are stored as columnar chunks
(see ``_chunks``), keyed by (series, step), and the first write wins.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from . import _chunks
from ._base import (
    PointRow,
    RunHandle,
    RunSummary,
    SeriesColumns,
    SeriesKey,
    StorageError,
    StorageRunExistsError,
    WriteResult,
)
from ._sqlite_api import RestQueries, _labels_decoder

SCHEMA = """
CREATE TABLE IF NOT EXISTS workspaces (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS folders (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    parent_id INTEGER REFERENCES folders(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_ns INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS folders_by_name
    ON folders(workspace_id, IFNULL(parent_id, 0), name);
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    folder_id INTEGER NOT NULL REFERENCES folders(id),
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '{}',
    orchestration_id TEXT,
    created_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL,
    UNIQUE (folder_id, name)
);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    metric_name TEXT NOT NULL,
    scale TEXT NOT NULL,
    labels TEXT NOT NULL,
    UNIQUE (experiment_id, metric_name, scale, labels)
);
CREATE TABLE IF NOT EXISTS client_events (
    experiment_id INTEGER NOT NULL,
    client_event_id TEXT NOT NULL,
    PRIMARY KEY (experiment_id, client_event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_ns INTEGER NOT NULL,
    revoked_ns INTEGER
);
CREATE TABLE IF NOT EXISTS ingestion_keys (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_ns INTEGER NOT NULL,
    revoked_ns INTEGER
);
CREATE TABLE IF NOT EXISTS annotations (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    text TEXT NOT NULL,
    step INTEGER,
    timestamp_ns INTEGER NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_ns INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS producer_batches (
    producer_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    accepted INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    PRIMARY KEY (producer_id, sequence)
) WITHOUT ROWID;
"""


class SqliteStore(RestQueries):
    """One connection to a SQLite store; safe to share between threads (serialised)."""

    def __init__(self, path: str | Path, busy_timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(self.path),
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        self._series_ids: dict[tuple[int, SeriesKey], int] = {}
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
            for statement in (SCHEMA + _chunks.SCHEMA).split(";"):
                if statement.strip():
                    conn.execute(statement)
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

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- runs -------------------------------------------------------------------------------

    @staticmethod
    def _get_or_create(
        conn: sqlite3.Connection, select: str, insert: str, args: tuple[object, ...]
    ) -> int:
        row = conn.execute(select, args).fetchone()
        if row is not None:
            return int(row[0])
        cursor = conn.execute(insert, (*args, time.time_ns()))
        return int(cursor.lastrowid or 0)

    def _workspace_row(self, conn: sqlite3.Connection, name: str) -> int:
        """The id of workspace ``name``, created if it does not exist."""
        return self._get_or_create(
            conn,
            "SELECT id FROM workspaces WHERE name=?",
            "INSERT INTO workspaces (name, created_ns) VALUES (?, ?)",
            (name,),
        )

    def _folder(
        self, conn: sqlite3.Connection, workspace_id: int, parent_id: int | None, name: str
    ) -> int:
        row = conn.execute(
            "SELECT id FROM folders WHERE workspace_id=? AND IFNULL(parent_id, 0)=? AND name=?",
            (workspace_id, parent_id or 0, name),
        ).fetchone()
        if row is not None:
            return int(row[0])
        cursor = conn.execute(
            "INSERT INTO folders (workspace_id, parent_id, name, created_ns) VALUES (?,?,?,?)",
            (workspace_id, parent_id, name, time.time_ns()),
        )
        return int(cursor.lastrowid or 0)

    def open_run(
        self,
        workspace: str,
        project: str,
        experiment_name: str | None,
        run_name: str,
        orchestration_id: str,
        allow_resume: bool,
    ) -> RunHandle:
        """Create or resume a run; answer its id and the last stored step of every series.

        Raises StorageRunExistsError when the run exists, belongs to another job (another
        orchestration id) and ``allow_resume`` is False.
        """
        with self.transaction() as conn:
            workspace_id = self._workspace_row(conn, workspace)
            folder_id = self._folder(conn, workspace_id, None, project)
            if experiment_name is not None:
                folder_id = self._folder(conn, workspace_id, folder_id, experiment_name)
            row = conn.execute(
                "SELECT id, orchestration_id FROM experiments WHERE folder_id=? AND name=?",
                (folder_id, run_name),
            ).fetchone()
            now = time.time_ns()
            if row is None:
                cursor = conn.execute(
                    "INSERT INTO experiments (workspace_id, folder_id, name, status, "
                    "orchestration_id, created_ns, updated_ns) VALUES (?,?,?,?,?,?,?)",
                    (workspace_id, folder_id, run_name, "running", orchestration_id, now, now),
                )
                return RunHandle(experiment_id=int(cursor.lastrowid or 0), created=True, resume=[])
            experiment_id, owner = int(row[0]), row[1]
            if not allow_resume and owner != orchestration_id:
                path = "/".join(p for p in (workspace, project, experiment_name, run_name) if p)
                raise StorageRunExistsError(
                    f"run {path!r} already exists (created by job {owner!r}) and "
                    "resume_strategy is 'Never'; choose another run_name or use "
                    "resume_strategy='Allow'"
                )
            conn.execute(
                "UPDATE experiments SET status='running', orchestration_id=?, updated_ns=? "
                "WHERE id=?",
                (orchestration_id, now, experiment_id),
            )
            resume = [
                (str(name), str(scale), str(labels), int(last))
                for name, scale, labels, last in conn.execute(
                    "SELECT s.metric_name, s.scale, s.labels, "
                    "(SELECT MAX(c.last_step) FROM chunks c WHERE c.series_id = s.id) AS last "
                    "FROM series s WHERE s.experiment_id=? AND last IS NOT NULL",
                    (experiment_id,),
                )
            ]
            return RunHandle(experiment_id=experiment_id, created=False, resume=resume)

    def set_status(self, experiment_id: int, status: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE experiments SET status=?, updated_ns=? WHERE id=?",
                (status, time.time_ns(), experiment_id),
            )

    # -- points -------------------------------------------------------------------------------

    def _series_id(self, conn: sqlite3.Connection, experiment_id: int, key: SeriesKey) -> int:
        cache_key = (experiment_id, key)
        series_id = self._series_ids.get(cache_key)
        if series_id is None:
            conn.execute(
                "INSERT OR IGNORE INTO series (experiment_id, metric_name, scale, labels) "
                "VALUES (?,?,?,?)",
                (experiment_id, *key),
            )
            row = conn.execute(
                "SELECT id FROM series WHERE experiment_id=? AND metric_name=? AND scale=? "
                "AND labels=?",
                (experiment_id, *key),
            ).fetchone()
            series_id = int(row[0])
            self._series_ids[cache_key] = series_id
        return series_id

    def write_points(
        self, experiment_id: int, batch: Mapping[SeriesKey, SeriesColumns]
    ) -> WriteResult:
        """Store a batch in one transaction; points already stored are counted, not changed."""
        try:
            with self.transaction() as conn:
                return self._write_columns(conn, experiment_id, batch)
        except sqlite3.Error as error:
            self._series_ids.clear()
            raise StorageError(f"store {self.path}: {error}") from error

    def write_batch(
        self,
        producer_id: str,
        sequence: int,
        experiment_id: int,
        batch: Mapping[SeriesKey, SeriesColumns],
    ) -> tuple[WriteResult, bool]:
        """Store a producer's batch once: a (producer, sequence) seen before is not applied again
        and its first answer is returned, with ``True`` for "replayed"."""
        try:
            with self.transaction() as conn:
                row = conn.execute(
                    "SELECT accepted, duplicates FROM producer_batches "
                    "WHERE producer_id=? AND sequence=?",
                    (producer_id, sequence),
                ).fetchone()
                if row is not None:
                    return WriteResult(accepted=int(row[0]), duplicates=int(row[1])), True
                result = self._write_columns(conn, experiment_id, batch)
                conn.execute(
                    "INSERT INTO producer_batches (producer_id, sequence, accepted, duplicates) "
                    "VALUES (?,?,?,?)",
                    (producer_id, sequence, result.accepted, result.duplicates),
                )
                return result, False
        except sqlite3.Error as error:
            self._series_ids.clear()
            raise StorageError(f"store {self.path}: {error}") from error

    def _write_columns(
        self, conn: sqlite3.Connection, experiment_id: int, batch: Mapping[SeriesKey, SeriesColumns]
    ) -> WriteResult:
        accepted = 0
        duplicates = 0
        by_series: dict[str, int] = {}
        for key, columns in batch.items():
            stored = _chunks.write(conn, self._series_id(conn, experiment_id, key), columns)
            dup = len(columns.steps) - stored
            accepted += stored
            if dup:
                duplicates += dup
                by_series[key[0]] = by_series.get(key[0], 0) + dup
        return WriteResult(accepted=accepted, duplicates=duplicates, duplicates_by_series=by_series)

    # -- queries ------------------------------------------------------------------------------

    def runs(self) -> list[RunSummary]:
        """Every run in the store with its series and point counts."""
        with self._lock:
            rows = self._conn.execute(
                """
                SELECT e.id, w.name, COALESCE(pf.name, f.name),
                       CASE WHEN pf.id IS NULL THEN NULL ELSE f.name END,
                       e.name, e.status,
                       (SELECT COUNT(*) FROM series s WHERE s.experiment_id = e.id),
                       (SELECT IFNULL(SUM(c.count), 0) FROM chunks c
                         JOIN series s ON c.series_id = s.id WHERE s.experiment_id = e.id)
                FROM experiments e
                JOIN workspaces w ON w.id = e.workspace_id
                JOIN folders f ON f.id = e.folder_id
                LEFT JOIN folders pf ON pf.id = f.parent_id
                ORDER BY e.id
                """
            ).fetchall()
        return [
            RunSummary(
                experiment_id=r[0],
                workspace=r[1],
                project=r[2],
                experiment_name=r[3],
                run_name=r[4],
                status=r[5],
                series=r[6],
                points=r[7],
            )
            for r in rows
        ]

    def find_run(
        self, workspace: str, project: str, run_name: str, experiment_name: str | None = None
    ) -> RunSummary | None:
        for run in self.runs():
            if (run.workspace, run.project, run.run_name, run.experiment_name) == (
                workspace,
                project,
                run_name,
                experiment_name,
            ) or (
                experiment_name is None
                and (run.workspace, run.project, run.run_name) == (workspace, project, run_name)
            ):
                return run
        return None

    def points(self, experiment_id: int) -> Iterator[PointRow]:
        """Every point of a run, ordered by series then step."""
        with self._lock:
            series = self._conn.execute(
                "SELECT id, metric_name, scale, labels FROM series WHERE experiment_id=? "
                "ORDER BY metric_name, scale, labels",
                (experiment_id,),
            ).fetchall()
            columns = [(row, _chunks.read(self._conn, row[0])) for row in series]
        for (_, name, scale, labels), (steps, values, timestamps) in columns:
            decoded = _labels_decoder.decode(labels)
            for step, value, timestamp in zip(steps, values, timestamps, strict=True):
                yield PointRow(name, scale, decoded, step, value, timestamp)

    def count_points(self) -> int:
        """Points stored in the whole store."""
        with self.reading() as conn:
            row = conn.execute("SELECT IFNULL(SUM(count), 0) FROM chunks").fetchone()
        return int(row[0])
