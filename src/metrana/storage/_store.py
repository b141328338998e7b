"""The store: one facade over the resource modules, whatever the engine.

Every method opens a transaction or a read (:meth:`Store.transaction`, :meth:`Store.reading`)
and hands the connection to the resource module that does the work (``_runs``, ``_points``,
``_folders``, ``_experiments``, ``_keys``, ``_metrics``, ``_idempotency``). An engine
(``SqliteStore``, ``PostgresStore``) adds only how it connects, its transactions, its schema
and its dialect. Methods that take an ``org_id`` only see that organization's objects: an id
from another reads as not found.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from ..api import _chart_types as ct
from ..api import _types as t
from . import (
    _charts,
    _experiments,
    _folders,
    _idempotency,
    _keys,
    _logins,
    _metrics,
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
    WriteResult,
)
from ._db import Connection

__all__ = ["Store"]


class Store(ABC):
    """The storage interface the server, the CLI and the dispatcher's embedded target use;
    safe to share between threads."""

    location: str  # the file or the database URL (without its password), for messages
    _series_ids: _points.SeriesIds

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Connection]:
        """One write transaction: committed on success, else rolled back. Nested calls in the
        same thread join the outer transaction, so that a server request and its idempotency
        record commit together."""

    @abstractmethod
    def reading(self) -> AbstractContextManager[Connection]:
        """A connection for queries (inside a transaction of this thread: its connection)."""

    def _writing_points(self) -> AbstractContextManager[Connection]:
        """A transaction for points; an engine makes its failures StorageError (the
        dispatcher's embedded target retries those)."""
        return self.transaction()

    def _claim(self, conn: Connection, scope: str, key: str) -> bool:
        """Whether this request may act on an Idempotency-Key now: False while another
        request with the same key is being acted on (a replica's, for a shared database).
        One store process serialises its writes, so by default it may."""
        return True

    @abstractmethod
    def close(self) -> None:
        """Release the store's connections; the store cannot be used after."""

    # -- runs and points ----------------------------------------------------------------------

    def open_run(
        self,
        workspace: str,
        project: str,
        experiment_name: str | None,
        run_name: str,
        orchestration_id: str,
        allow_resume: bool,
        metadata: dict[str, Any] | None = None,
        org_id: int | None = None,
    ) -> RunHandle:
        """Create or resume a run in organization ``org_id`` (a server's: the caller's); mark
        it running, merge ``metadata`` into its own, and answer its id and the last stored
        step of every series.

        Without ``org_id`` (the embedded store, which has no keys), the run is in the
        organization named after its workspace, as stores made before organizations were
        migrated: so a run resumes where it was, and each workspace stays its own tenant when
        the store is later served.

        Raises StorageRunExistsError when the run exists, belongs to another job (another
        orchestration id) and ``allow_resume`` is False.
        """
        if metadata:
            _experiments.check_metadata(metadata)
        with self.transaction() as conn:
            if org_id is None:
                org_id = _folders.organization(conn, workspace)
            path = _runs.run_path(workspace, project, experiment_name)
            return _runs.open_run(
                conn, org_id, path, run_name, orchestration_id, allow_resume, metadata
            )

    def set_status(
        self, experiment_id: int, status: str, error: t.ExperimentStatusError | None = None
    ) -> None:
        """End (or restart) a run: ``running``, ``done`` or ``error`` (with its name and
        detail)."""
        with self.transaction() as conn:
            _runs.set_status(conn, experiment_id, status, error)

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
        self, org_id: int, experiment_id: int, events: Sequence[t.MetricCreateInput]
    ) -> t.IngestResponse:
        """Store the events of ``ingest_metrics`` in one transaction (see
        :func:`_points.ingest_json`)."""
        with self.transaction() as conn:
            return _points.ingest_json(conn, self._series_ids, org_id, experiment_id, events)

    # -- organizations and keys -----------------------------------------------------------------

    def organization_id(self, name: str) -> int:
        """The id of an organization, created if it does not exist."""
        with self.transaction() as conn:
            return _folders.organization(conn, name)

    def organization_names(self) -> list[str]:
        """Every organization's name, oldest first."""
        with self.reading() as conn:
            return _folders.organization_names(conn)

    def create_api_key(self, organization: str, name: str) -> tuple[ApiKeyInfo, str]:
        """A new API key of an organization; the secret is returned once and only its hash
        is kept."""
        with self.transaction() as conn:
            return _keys.create_api_key(conn, organization, name)

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
        self, org_id: int, experiment_id: int, name: str, ttl_ms: int
    ) -> t.IngestionKeyCreateResponse:
        """A new ingestion key of an experiment, valid for ``ttl_ms``; the token is returned
        once."""
        with self.transaction() as conn:
            return _keys.create_ingestion_key(conn, org_id, experiment_id, name, ttl_ms)

    def list_ingestion_keys(self, org_id: int, experiment_id: int) -> list[t.IngestionKey]:
        """An experiment's ingestion keys, revoked ones included."""
        with self.reading() as conn:
            return _keys.list_ingestion_keys(conn, org_id, experiment_id)

    def revoke_ingestion_key(self, org_id: int, experiment_id: int, key_id: int) -> t.IngestionKey:
        """Revoke an ingestion key of an experiment."""
        with self.transaction() as conn:
            return _keys.revoke_ingestion_key(conn, org_id, experiment_id, key_id)

    # -- the dashboard's logins (see _logins) ----------------------------------------------------

    def create_login_token(self, principal: Principal, expires_ns: int, now_ns: int) -> str:
        """A new one-time dashboard login token of ``principal``'s organization (only its hash
        is kept)."""
        with self.transaction() as conn:
            return _logins.create_login_token(conn, principal, expires_ns, now_ns)

    def redeem_login_token(
        self, token: str, session_expires_ns: int, now_ns: int
    ) -> tuple[str, Principal] | None:
        """Use up a login token and open a session (its cookie value and principal); None
        for a token used before, expired or unknown. Works once across replicas."""
        with self.transaction() as conn:
            return _logins.redeem_login_token(conn, token, session_expires_ns, now_ns)

    def open_dashboard_session(self, principal: Principal, expires_ns: int, now_ns: int) -> str:
        """A new dashboard session of ``principal``'s organization: its cookie value."""
        with self.transaction() as conn:
            return _logins.open_session(conn, principal, expires_ns, now_ns)

    def dashboard_session(self, cookie: str, now_ns: int) -> tuple[Principal, int] | None:
        """The principal of a live session's cookie and when it expires (ns), or None."""
        with self.reading() as conn:
            return _logins.session(conn, cookie, now_ns)

    def close_dashboard_session(self, cookie: str) -> None:
        """End a dashboard session (logout)."""
        with self.transaction() as conn:
            _logins.close_session(conn, cookie)

    # -- folders --------------------------------------------------------------------------------

    def list_folders(self, org_id: int, path: str | None) -> list[t.Folder]:
        """Every folder of the organization, or only the one at ``path``."""
        with self.reading() as conn:
            return _folders.list_folders(conn, org_id, path)

    def get_folder(self, org_id: int, folder_id: int) -> t.FolderContentsResponse:
        """A folder with the folders and experiments directly in it."""
        with self.reading() as conn:
            return _experiments.in_folder(conn, org_id, folder_id)

    def create_folder(self, org_id: int, request: t.FolderCreate) -> t.Folder:
        """A new folder, its name free among its siblings."""
        with self.transaction() as conn:
            return _folders.create_folder(conn, org_id, request)

    def patch_folder(self, org_id: int, folder_id: int, patch: t.FolderPatch) -> t.Folder:
        """Rename and/or move a folder."""
        with self.transaction() as conn:
            return _folders.patch_folder(conn, org_id, folder_id, patch)

    # -- experiments and annotations ------------------------------------------------------------

    def get_experiment(self, org_id: int, experiment_id: int) -> t.Experiment:
        """One experiment."""
        with self.reading() as conn:
            return _experiments.get_experiment(conn, org_id, experiment_id)

    def list_experiments(self, org_id: int, query: t.ListExperimentsQuery) -> list[t.Experiment]:
        """The organization's experiments that match ``query``, newest first."""
        with self.reading() as conn:
            return _experiments.list_experiments(conn, org_id, query)

    def create_experiment(self, org_id: int, request: t.ExperimentCreate) -> t.Experiment:
        """A new experiment, its slug free in its folder."""
        _experiments.check_metadata(request.metadata)
        with self.transaction() as conn:
            return _experiments.create_experiment(conn, org_id, request)

    def update_experiment_status(
        self, org_id: int, experiment_id: int, update: t.ExperimentStatusUpdate
    ) -> t.Experiment:
        """Set an experiment's status (and its lifecycle times)."""
        with self.transaction() as conn:
            return _experiments.update_status(conn, org_id, experiment_id, update)

    def move_experiment(
        self, org_id: int, experiment_id: int, folder_id: str | None
    ) -> t.Experiment:
        """Move an experiment to another folder (the top level for None), its slug free
        there."""
        with self.transaction() as conn:
            return _experiments.move_experiment(conn, org_id, experiment_id, folder_id)

    def create_annotation(
        self, org_id: int, experiment_id: int, request: t.AnnotationCreate
    ) -> t.ExperimentAnnotationResponse:
        """A note on an experiment."""
        _experiments.check_metadata(request.metadata)
        with self.transaction() as conn:
            return _experiments.create_annotation(conn, org_id, experiment_id, request)

    def list_annotations(
        self, org_id: int, experiment_id: int, query: t.ListAnnotationsQuery
    ) -> list[t.Annotation]:
        """An experiment's annotations, oldest first."""
        with self.reading() as conn:
            return _experiments.list_annotations(conn, org_id, experiment_id, query)

    # -- metric queries -------------------------------------------------------------------------

    def list_metrics(
        self, org_id: int, experiment_id: int, query: t.ListMetricsQuery
    ) -> t.RowsResponse:
        """An experiment's events as rows (see :func:`_metrics.list_metrics`)."""
        with self.reading() as conn:
            return _metrics.list_metrics(conn, org_id, experiment_id, query)

    def compare_metrics(self, org_id: int, query: t.CompareQuery) -> t.RowsResponse:
        """The events of several series as rows (see :func:`_metrics.compare_metrics`)."""
        with self.reading() as conn:
            return _metrics.compare_metrics(conn, org_id, query)

    def chart_sources(
        self,
        org_id: int,
        experiment_id: int,
        metric_names: list[str],
        low: int | None,
        high: int | None,
    ) -> list[_charts.ChartSource]:
        """Series with their chunks over a step range (see :func:`_charts.chart_sources`)."""
        with self.reading() as conn:
            return _charts.chart_sources(conn, org_id, experiment_id, metric_names, low, high)

    def experiment_summaries(
        self, org_id: int, experiment_ids: list[str], metric_names: list[str]
    ) -> list[ct.ExperimentSummary]:
        """Experiments' series and point counts and last values (see
        :func:`_charts.summaries`)."""
        with self.reading() as conn:
            return _charts.summaries(conn, org_id, experiment_ids, metric_names)

    def metric_catalog(
        self, org_id: int, experiment_id: int, limit: int | None
    ) -> t.MetricCatalogResponse:
        """An experiment's metric names and the metadata keys of their events."""
        with self.reading() as conn:
            return _metrics.catalog(conn, org_id, experiment_id, limit)

    def metric_catalog_values(
        self, org_id: int, experiment_id: int, metric_name: str, keys: list[str], limit: int | None
    ) -> t.MetricCatalogValuesResponse:
        """The distinct values of a metric's metadata keys in an experiment."""
        with self.reading() as conn:
            return _metrics.catalog_values(conn, org_id, experiment_id, metric_name, keys, limit)

    # -- idempotent requests --------------------------------------------------------------------

    def idempotent(
        self, scope: str, key: str, fingerprint: str, action: Callable[[], tuple[int, bytes]]
    ) -> tuple[int, bytes]:
        """Run ``action`` once per (scope, key), in the same transaction as its record; a
        repeated key answers the first answer again without acting."""
        with self.transaction() as conn:
            if not self._claim(conn, scope, key):
                raise _idempotency.InProgressError(
                    f"a request with Idempotency-Key {key!r} is still being acted on"
                )
            return _idempotency.idempotent(conn, scope, key, fingerprint, action)

    def forget_idempotency(self, older_than_ns: int) -> int:
        """Drop idempotency records older than a cutoff; answer how many."""
        with self.transaction() as conn:
            return _idempotency.forget_idempotency(conn, older_than_ns)
