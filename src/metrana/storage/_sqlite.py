"""The SQLite storage engine: the embedded store, and the server's default.

WAL mode, one ``BEGIN IMMEDIATE`` transaction per batch; points are stored as columnar chunks
(see ``_chunks``), keyed by (series, step), and the first write wins.

The engine owns the connection, its transactions and the schema (``_sqlite_schema``); every
method opens a transaction or a read and hands the connection to the resource module that
does the work (``_runs``, ``_points``, ``_folders``, ``_experiments``, ``_keys``, ``_metrics``,
``_idempotency``), written to be shared with the PostgreSQL engine to come.
Methods that take a ``workspace_id`` only see that workspace's objects: an id from another
workspace reads as not found.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..api import _types as t
from . import (
    _chunks,
    _experiments,
    _folders,
    _idempotency,
    _keys,
    _metrics,
    _migrations,
    _points,
    _runs,
)
from ._base import (
    ApiKeyInfo,
    PointRow,
    Principal,
    RunHandle,
    RunSummary,
    SeriesColumns,
    SeriesKey,
    StorageError,
    WriteResult,
)
from ._sqlite_schema import SCHEMA


class SqliteStore:
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
            for statement in (SCHEMA + _chunks.SCHEMA).split(";"):
                if statement.strip():
                    conn.execute(statement)
            _chunks.migrate_point_rows(conn)
            _migrations.migrate(conn)

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

    # -- runs and points ----------------------------------------------------------------------

    def open_run(
        self,
        workspace: str,
        project: str,
        experiment_name: str | None,
        run_name: str,
        orchestration_id: str,
        allow_resume: bool,
        metadata: Mapping[str, Any] | None = None,
    ) -> RunHandle:
        """Create or resume a run; answer its id and the last stored step of every series.
        ``metadata`` is merged into the run's (shallow: its keys replace the stored ones).

        Raises StorageRunExistsError when the run exists, belongs to another job (another
        orchestration id) and ``allow_resume`` is False.
        """
        with self.transaction() as conn:
            return _runs.open_run(
                conn,
                workspace,
                project,
                experiment_name,
                run_name,
                orchestration_id,
                allow_resume,
                metadata,
            )

    def set_status(self, experiment_id: int, status: str) -> None:
        """Set a run's status."""
        with self.transaction() as conn:
            _runs.set_status(conn, experiment_id, status)

    def write_points(
        self, experiment_id: int, batch: Mapping[SeriesKey, SeriesColumns]
    ) -> WriteResult:
        """Store a batch in one transaction; points already stored are counted, not changed."""
        with self._writing_points() as conn:
            return _points.write_columns(conn, self._series_ids, experiment_id, batch)

    def write_batch(
        self,
        producer_id: str,
        sequence: int,
        experiment_id: int,
        batch: Mapping[SeriesKey, SeriesColumns],
    ) -> tuple[WriteResult, bool]:
        """Store a producer's batch once: a (producer, sequence) seen before is not applied again
        and its first answer is returned, with ``True`` for "replayed"."""
        with self._writing_points() as conn:
            return _points.write_batch(
                conn, self._series_ids, producer_id, sequence, experiment_id, batch
            )

    def runs(self) -> list[RunSummary]:
        """Every run in the store with its series and point counts."""
        with self.reading() as conn:
            return _runs.runs(conn)

    def find_run(
        self, workspace: str, project: str, run_name: str, experiment_name: str | None = None
    ) -> RunSummary | None:
        """A run by its address (with no ``experiment_name``, one in an experiment folder
        matches too), or None."""
        with self.reading() as conn:
            return _runs.find_run(conn, workspace, project, run_name, experiment_name)

    def points(self, experiment_id: int) -> Iterator[PointRow]:
        """Every point of a run, ordered by series then step."""
        with self.reading() as conn:
            rows = _points.points(conn, experiment_id)
        yield from rows

    def count_points(self) -> int:
        """Points stored in the whole store."""
        with self.reading() as conn:
            return _points.count_points(conn)

    def ingest_json(
        self, workspace_id: int, experiment_id: int, metrics: Sequence[t.IngestMetric]
    ) -> t.IngestResult:
        """Store JSON-ingested points in one transaction (see :func:`_points.ingest_json`)."""
        with self.transaction() as conn:
            return _points.ingest_json(conn, self._series_ids, workspace_id, experiment_id, metrics)

    # -- workspaces and keys --------------------------------------------------------------------

    def workspace_id(self, name: str) -> int:
        """The id of a workspace, created if it does not exist."""
        with self.transaction() as conn:
            return _folders.workspace(conn, name)

    def workspace_names(self) -> list[str]:
        """Every workspace's name, oldest first."""
        with self.reading() as conn:
            return _folders.workspace_names(conn)

    def create_api_key(self, workspace: str, name: str) -> tuple[ApiKeyInfo, str]:
        """A new workspace API key; the secret is returned once and only its hash is kept."""
        with self.transaction() as conn:
            return _keys.create_api_key(conn, workspace, name)

    def list_api_keys(self) -> list[ApiKeyInfo]:
        """Every API key, revoked ones included."""
        with self.reading() as conn:
            return _keys.list_api_keys(conn)

    def revoke_api_key(self, key: str) -> ApiKeyInfo:
        """Revoke an API key given by id or by its prefix."""
        with self.transaction() as conn:
            key_id = _keys.revoke_api_key(conn, key)
        return next(k for k in self.list_api_keys() if k.id == key_id)

    def authenticate(self, secret: str) -> Principal | None:
        """The holder of a key, or None when it is unknown, revoked or expired. An ingestion
        key's last use is written at most once a minute."""
        now = time.time_ns()
        with self.reading() as conn:
            principal, note_use = _keys.authenticate(conn, secret, now)
        if principal is not None and note_use:
            with self.transaction() as conn:
                _keys.note_use(conn, principal.key_id, now)
        return principal

    def create_ingestion_key(
        self,
        workspace_id: int,
        experiment_id: int,
        name: str,
        ttl_ms: int = t.DEFAULT_INGESTION_KEY_TTL_MS,
    ) -> t.IngestionKeyCreated:
        """A new ingestion key of an experiment, valid for ``ttl_ms``; the secret is returned
        once."""
        with self.transaction() as conn:
            return _keys.create_ingestion_key(conn, workspace_id, experiment_id, name, ttl_ms)

    def list_ingestion_keys(self, workspace_id: int, experiment_id: int) -> list[t.IngestionKey]:
        """An experiment's ingestion keys, revoked ones included."""
        with self.reading() as conn:
            return _keys.list_ingestion_keys(conn, workspace_id, experiment_id)

    def revoke_ingestion_key(self, workspace_id: int, key_id: int) -> t.IngestionKey:
        """Revoke an ingestion key of the workspace."""
        with self.transaction() as conn:
            return _keys.revoke_ingestion_key(conn, workspace_id, key_id)

    # -- folders --------------------------------------------------------------------------------

    def list_folders(self, workspace_id: int, parent_id: int | None) -> list[t.Folder]:
        """The folders directly under a folder (the top level when None)."""
        with self.reading() as conn:
            return _folders.list_folders(conn, workspace_id, parent_id)

    def get_folder(self, workspace_id: int, folder_id: int) -> t.Folder:
        """One folder, with its path."""
        with self.reading() as conn:
            return _folders.get_folder(conn, workspace_id, folder_id)

    def create_folder(self, workspace_id: int, request: t.FolderCreate) -> t.Folder:
        """A new folder, its name free among its siblings."""
        with self.transaction() as conn:
            return _folders.create_folder(conn, workspace_id, request)

    def patch_folder(self, workspace_id: int, folder_id: int, patch: t.FolderPatch) -> t.Folder:
        """Change a folder's description."""
        with self.transaction() as conn:
            return _folders.patch_folder(conn, workspace_id, folder_id, patch)

    def rename_folder(self, workspace_id: int, folder_id: int, name: str) -> t.Folder:
        """Rename a folder, the name free among its siblings."""
        with self.transaction() as conn:
            return _folders.rename_folder(conn, workspace_id, folder_id, name)

    def move_folder(self, workspace_id: int, folder_id: int, parent_id: int | None) -> t.Folder:
        """Move a folder under another (the top level when None), not into its own subtree."""
        with self.transaction() as conn:
            return _folders.move_folder(conn, workspace_id, folder_id, parent_id)

    # -- experiments and annotations ------------------------------------------------------------

    def get_experiment(self, workspace_id: int, experiment_id: int) -> t.Experiment:
        """One experiment."""
        with self.reading() as conn:
            return _experiments.get_experiment(conn, workspace_id, experiment_id)

    def list_experiments(
        self, workspace_id: int, folder_id: int | None, status: str | None
    ) -> list[t.Experiment]:
        """The workspace's experiments, optionally only those in a folder or with a status."""
        with self.reading() as conn:
            return _experiments.list_experiments(conn, workspace_id, folder_id, status)

    def create_experiment(self, workspace_id: int, request: t.ExperimentCreate) -> t.Experiment:
        """A new experiment, its name free in its folder."""
        _experiments.check_new_experiment(request)
        with self.transaction() as conn:
            return _experiments.create_experiment(conn, workspace_id, request)

    def update_experiment_status(
        self, workspace_id: int, experiment_id: int, status: str
    ) -> t.Experiment:
        """Set an experiment's status."""
        with self.transaction() as conn:
            return _experiments.update_experiment_status(conn, workspace_id, experiment_id, status)

    def move_experiment(
        self, workspace_id: int, experiment_id: int, folder_id: int
    ) -> t.Experiment:
        """Move an experiment to another folder, its name free there."""
        with self.transaction() as conn:
            return _experiments.move_experiment(conn, workspace_id, experiment_id, folder_id)

    def create_annotation(
        self, workspace_id: int, experiment_id: int, request: t.AnnotationCreate
    ) -> t.Annotation:
        """A note on an experiment."""
        _experiments.check_new_annotation(request)
        with self.transaction() as conn:
            return _experiments.create_annotation(conn, workspace_id, experiment_id, request)

    def list_annotations(self, workspace_id: int, experiment_id: int) -> list[t.Annotation]:
        """An experiment's annotations, oldest first."""
        with self.reading() as conn:
            return _experiments.list_annotations(conn, workspace_id, experiment_id)

    # -- metric queries -------------------------------------------------------------------------

    def list_metrics(
        self,
        workspace_id: int,
        experiment_id: int,
        metric_name: str | None,
        scale: str | None,
        limit: int | None,
    ) -> t.MetricList:
        """An experiment's series with their points (see :func:`_metrics.list_metrics`)."""
        with self.reading() as conn:
            return _metrics.list_metrics(
                conn, workspace_id, experiment_id, metric_name, scale, limit
            )

    def compare_metrics(self, workspace_id: int, request: t.CompareRequest) -> t.CompareResponse:
        """Several series aligned by step: one row per step any of them has (first ``limit``)."""
        with self.reading() as conn:
            return _metrics.compare_metrics(conn, workspace_id, request)

    def metric_catalog(
        self, workspace_id: int, folder_id: int | None
    ) -> list[t.MetricCatalogEntry]:
        """Every metric name in the workspace (or under a folder) and what carries it."""
        with self.reading() as conn:
            return _metrics.metric_catalog(conn, workspace_id, folder_id)

    def metric_catalog_values(
        self, workspace_id: int, metric_name: str, label_key: str
    ) -> t.MetricCatalogValues:
        """The distinct values a label takes on a metric across the workspace."""
        with self.reading() as conn:
            return _metrics.metric_catalog_values(conn, workspace_id, metric_name, label_key)

    # -- idempotent requests --------------------------------------------------------------------

    def idempotent(
        self, scope: str, key: str, fingerprint: str, action: Callable[[], tuple[int, bytes]]
    ) -> tuple[int, bytes]:
        """Run ``action`` once per (scope, key), in the same transaction as its record; a
        repeated key answers the first answer again without acting."""
        with self.transaction() as conn:
            return _idempotency.idempotent(conn, scope, key, fingerprint, action)

    def forget_idempotency(self, older_than_ns: int) -> int:
        """Drop idempotency records older than a cutoff; answer how many."""
        with self.transaction() as conn:
            return _idempotency.forget_idempotency(conn, older_than_ns)
