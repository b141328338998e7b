"""What the server asks of a SQLite store beyond runs and points: keys, folders, experiments,
metric queries, annotations, JSON ingestion and idempotent replays.

Every method that takes a ``workspace_id`` only sees that workspace's objects: an id from
another workspace reads as not found.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import msgspec

from ..api import _types as t
from . import _chunks
from ._base import (
    ApiKeyInfo,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    Principal,
    SeriesColumns,
    SeriesKey,
    WriteResult,
)

API_KEY_PREFIX = "mtr_"
INGESTION_KEY_PREFIX = "mti_"

_json = msgspec.json.Encoder(order="sorted")
_any_decoder = msgspec.json.Decoder(dict[str, Any])
_labels_decoder = msgspec.json.Decoder(dict[str, str])


def hash_secret(secret: str) -> str:
    """Keys are 256-bit random tokens, so one SHA-256 is enough to store them safely."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


class RestQueries:
    """Mixed into :class:`SqliteStore`."""

    if TYPE_CHECKING:

        def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def reading(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def _workspace_row(self, conn: sqlite3.Connection, name: str) -> int: ...

        def _series_id(
            self, conn: sqlite3.Connection, experiment_id: int, key: SeriesKey
        ) -> int: ...

        def _write_columns(
            self,
            conn: sqlite3.Connection,
            experiment_id: int,
            batch: Mapping[SeriesKey, SeriesColumns],
        ) -> WriteResult: ...

    # -- workspaces and API keys ------------------------------------------------------------

    def workspace_id(self, name: str) -> int:
        """The id of a workspace, created if it does not exist."""
        with self.transaction() as conn:
            return self._workspace_row(conn, name)

    def workspace_names(self) -> list[str]:
        with self.reading() as conn:
            return [str(r[0]) for r in conn.execute("SELECT name FROM workspaces ORDER BY id")]

    def create_api_key(self, workspace: str, name: str) -> tuple[ApiKeyInfo, str]:
        """A new workspace API key; the secret is returned once and only its hash is kept."""
        secret = _new_secret(API_KEY_PREFIX)
        now = time.time_ns()
        with self.transaction() as conn:
            workspace_id = self.workspace_id(workspace)
            cursor = conn.execute(
                "INSERT INTO api_keys (workspace_id, name, prefix, hash, created_ns) "
                "VALUES (?,?,?,?,?)",
                (workspace_id, name, secret[:12], hash_secret(secret), now),
            )
        info = ApiKeyInfo(
            id=int(cursor.lastrowid or 0),
            workspace=workspace,
            name=name,
            prefix=secret[:12],
            created_ns=now,
            revoked=False,
        )
        return info, secret

    def list_api_keys(self) -> list[ApiKeyInfo]:
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT k.id, w.name, k.name, k.prefix, k.created_ns, k.revoked_ns "
                "FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id ORDER BY k.id"
            ).fetchall()
        return [ApiKeyInfo(r[0], r[1], r[2], r[3], r[4], r[5] is not None) for r in rows]

    def revoke_api_key(self, key: str) -> ApiKeyInfo:
        """Revoke an API key given by id or by its prefix."""
        with self.transaction() as conn:
            column = "id" if key.isdigit() else "prefix"
            row = conn.execute(f"SELECT id FROM api_keys WHERE {column}=?", (key,)).fetchone()
            if row is None:
                raise NotFoundError(f"no API key with {column} {key!r}")
            conn.execute(
                "UPDATE api_keys SET revoked_ns=COALESCE(revoked_ns, ?) WHERE id=?",
                (time.time_ns(), row[0]),
            )
        return next(k for k in self.list_api_keys() if k.id == row[0])

    def authenticate(self, secret: str) -> Principal | None:
        """The holder of a key, or None when it is unknown or revoked."""
        digest = hash_secret(secret)
        with self.reading() as conn:
            row = conn.execute(
                "SELECT k.id, k.name, w.id, w.name FROM api_keys k "
                "JOIN workspaces w ON w.id = k.workspace_id "
                "WHERE k.hash=? AND k.revoked_ns IS NULL",
                (digest,),
            ).fetchone()
            if row is not None:
                return Principal("api", row[0], row[1], row[2], row[3])
            row = conn.execute(
                "SELECT k.id, k.name, w.id, w.name, e.id FROM ingestion_keys k "
                "JOIN experiments e ON e.id = k.experiment_id "
                "JOIN workspaces w ON w.id = e.workspace_id "
                "WHERE k.hash=? AND k.revoked_ns IS NULL",
                (digest,),
            ).fetchone()
        if row is not None:
            return Principal("ingestion", row[0], row[1], row[2], row[3], row[4])
        return None

    # -- ingestion keys -------------------------------------------------------------------

    def create_ingestion_key(
        self, workspace_id: int, experiment_id: int, name: str
    ) -> t.IngestionKeyCreated:
        secret = _new_secret(INGESTION_KEY_PREFIX)
        now = time.time_ns()
        with self.transaction() as conn:
            self._experiment_row(conn, workspace_id, experiment_id)
            cursor = conn.execute(
                "INSERT INTO ingestion_keys (experiment_id, name, prefix, hash, created_ns) "
                "VALUES (?,?,?,?,?)",
                (experiment_id, name, secret[:12], hash_secret(secret), now),
            )
        key = t.IngestionKey(
            id=int(cursor.lastrowid or 0),
            experiment_id=experiment_id,
            name=name,
            prefix=secret[:12],
            created_ns=now,
            revoked=False,
        )
        return t.IngestionKeyCreated(key=key, secret=secret)

    _INGESTION_KEY_COLUMNS = (
        "SELECT k.id, k.experiment_id, k.name, k.prefix, k.created_ns, k.revoked_ns "
        "FROM ingestion_keys k JOIN experiments e ON e.id = k.experiment_id "
        "WHERE e.workspace_id=? "
    )

    def list_ingestion_keys(self, workspace_id: int, experiment_id: int) -> list[t.IngestionKey]:
        with self.reading() as conn:
            self._experiment_row(conn, workspace_id, experiment_id)
            rows = conn.execute(
                self._INGESTION_KEY_COLUMNS + "AND k.experiment_id=? ORDER BY k.id",
                (workspace_id, experiment_id),
            ).fetchall()
        return [t.IngestionKey(r[0], r[1], r[2], r[3], r[4], r[5] is not None) for r in rows]

    def revoke_ingestion_key(self, workspace_id: int, key_id: int) -> t.IngestionKey:
        with self.transaction() as conn:
            row = conn.execute(
                self._INGESTION_KEY_COLUMNS + "AND k.id=?", (workspace_id, key_id)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no ingestion key {key_id} in this workspace")
            now = row[5] or time.time_ns()
            conn.execute("UPDATE ingestion_keys SET revoked_ns=? WHERE id=?", (now, key_id))
        return t.IngestionKey(row[0], row[1], row[2], row[3], row[4], True)

    # -- folders ------------------------------------------------------------------------------

    def _folder_row(self, conn: sqlite3.Connection, workspace_id: int, folder_id: int) -> Any:
        row = conn.execute(
            "SELECT id, workspace_id, parent_id, name, description, created_ns FROM folders "
            "WHERE id=? AND workspace_id=?",
            (folder_id, workspace_id),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no folder {folder_id} in this workspace")
        return row

    def _folder_struct(self, conn: sqlite3.Connection, row: Any) -> t.Folder:
        path = [str(row[3])]
        parent = row[2]
        while parent is not None:
            name, parent = conn.execute(
                "SELECT name, parent_id FROM folders WHERE id=?", (parent,)
            ).fetchone()
            path.insert(0, str(name))
        return t.Folder(
            id=row[0],
            workspace_id=row[1],
            parent_id=row[2],
            name=row[3],
            description=row[4],
            path=path,
            created_ns=row[5],
        )

    def list_folders(self, workspace_id: int, parent_id: int | None) -> list[t.Folder]:
        with self.reading() as conn:
            if parent_id is not None:
                self._folder_row(conn, workspace_id, parent_id)
            rows = conn.execute(
                "SELECT id, workspace_id, parent_id, name, description, created_ns FROM folders "
                "WHERE workspace_id=? AND IFNULL(parent_id, 0)=? ORDER BY name",
                (workspace_id, parent_id or 0),
            ).fetchall()
            return [self._folder_struct(conn, row) for row in rows]

    def get_folder(self, workspace_id: int, folder_id: int) -> t.Folder:
        with self.reading() as conn:
            return self._folder_struct(conn, self._folder_row(conn, workspace_id, folder_id))

    def _check_folder_name(
        self, conn: sqlite3.Connection, workspace_id: int, parent_id: int | None, name: str
    ) -> None:
        _check_name("folder name", name)
        taken = conn.execute(
            "SELECT id FROM folders WHERE workspace_id=? AND IFNULL(parent_id, 0)=? AND name=?",
            (workspace_id, parent_id or 0, name),
        ).fetchone()
        if taken is not None:
            raise ConflictError(f"a folder named {name!r} already exists there (id {taken[0]})")

    def create_folder(self, workspace_id: int, request: t.FolderCreate) -> t.Folder:
        with self.transaction() as conn:
            if request.parent_id is not None:
                self._folder_row(conn, workspace_id, request.parent_id)
            self._check_folder_name(conn, workspace_id, request.parent_id, request.name)
            cursor = conn.execute(
                "INSERT INTO folders (workspace_id, parent_id, name, description, created_ns) "
                "VALUES (?,?,?,?,?)",
                (workspace_id, request.parent_id, request.name, request.description, _now()),
            )
            return self.get_folder(workspace_id, int(cursor.lastrowid or 0))

    def patch_folder(self, workspace_id: int, folder_id: int, patch: t.FolderPatch) -> t.Folder:
        with self.transaction() as conn:
            self._folder_row(conn, workspace_id, folder_id)
            if patch.description is not None:
                conn.execute(
                    "UPDATE folders SET description=? WHERE id=?", (patch.description, folder_id)
                )
            return self.get_folder(workspace_id, folder_id)

    def rename_folder(self, workspace_id: int, folder_id: int, name: str) -> t.Folder:
        with self.transaction() as conn:
            row = self._folder_row(conn, workspace_id, folder_id)
            if row[3] != name:
                self._check_folder_name(conn, workspace_id, row[2], name)
                conn.execute("UPDATE folders SET name=? WHERE id=?", (name, folder_id))
            return self.get_folder(workspace_id, folder_id)

    def move_folder(self, workspace_id: int, folder_id: int, parent_id: int | None) -> t.Folder:
        with self.transaction() as conn:
            row = self._folder_row(conn, workspace_id, folder_id)
            ancestor = parent_id
            while ancestor is not None:
                if ancestor == folder_id:
                    raise ConflictError(
                        f"cannot move folder {folder_id} into itself or one of its sub-folders"
                    )
                ancestor = self._folder_row(conn, workspace_id, ancestor)[2]
            if row[2] != parent_id:
                self._check_folder_name(conn, workspace_id, parent_id, row[3])
                conn.execute("UPDATE folders SET parent_id=? WHERE id=?", (parent_id, folder_id))
            return self.get_folder(workspace_id, folder_id)

    def _folder_subtree(self, conn: sqlite3.Connection, folder_id: int) -> list[int]:
        return [
            int(r[0])
            for r in conn.execute(
                "WITH RECURSIVE sub(id) AS (SELECT ? UNION ALL "
                "SELECT f.id FROM folders f JOIN sub ON f.parent_id = sub.id) SELECT id FROM sub",
                (folder_id,),
            )
        ]

    # -- experiments ----------------------------------------------------------------------

    _EXPERIMENT_COLUMNS = (
        "SELECT id, workspace_id, folder_id, name, status, description, metadata, "
        "orchestration_id, created_ns, updated_ns FROM experiments "
    )

    def _experiment_row(
        self, conn: sqlite3.Connection, workspace_id: int, experiment_id: int
    ) -> Any:
        row = conn.execute(
            self._EXPERIMENT_COLUMNS + "WHERE id=? AND workspace_id=?",
            (experiment_id, workspace_id),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no experiment {experiment_id} in this workspace")
        return row

    @staticmethod
    def _experiment(row: Any) -> t.Experiment:
        return t.Experiment(
            id=row[0],
            workspace_id=row[1],
            folder_id=row[2],
            name=row[3],
            status=row[4],
            description=row[5],
            metadata=_any_decoder.decode(row[6]),
            orchestration_id=row[7],
            created_ns=row[8],
            updated_ns=row[9],
        )

    def get_experiment(self, workspace_id: int, experiment_id: int) -> t.Experiment:
        with self.reading() as conn:
            return self._experiment(self._experiment_row(conn, workspace_id, experiment_id))

    def list_experiments(
        self, workspace_id: int, folder_id: int | None, status: str | None
    ) -> list[t.Experiment]:
        query = self._EXPERIMENT_COLUMNS + "WHERE workspace_id=?"
        args: list[Any] = [workspace_id]
        if folder_id is not None:
            query += " AND folder_id=?"
            args.append(folder_id)
        if status is not None:
            query += " AND status=?"
            args.append(status)
        with self.reading() as conn:
            if folder_id is not None:
                self._folder_row(conn, workspace_id, folder_id)
            rows = conn.execute(query + " ORDER BY id", args).fetchall()
        return [self._experiment(row) for row in rows]

    def create_experiment(self, workspace_id: int, request: t.ExperimentCreate) -> t.Experiment:
        _check_name("experiment name", request.name)
        with self.transaction() as conn:
            self._folder_row(conn, workspace_id, request.folder_id)
            self._check_experiment_name(conn, request.folder_id, request.name)
            now = _now()
            cursor = conn.execute(
                "INSERT INTO experiments (workspace_id, folder_id, name, status, description, "
                "metadata, created_ns, updated_ns) VALUES (?,?,?,?,?,?,?,?)",
                (
                    workspace_id,
                    request.folder_id,
                    request.name,
                    request.status,
                    request.description,
                    _json.encode(request.metadata).decode(),
                    now,
                    now,
                ),
            )
            return self.get_experiment(workspace_id, int(cursor.lastrowid or 0))

    @staticmethod
    def _check_experiment_name(conn: sqlite3.Connection, folder_id: int, name: str) -> None:
        taken = conn.execute(
            "SELECT id FROM experiments WHERE folder_id=? AND name=?", (folder_id, name)
        ).fetchone()
        if taken is not None:
            raise ConflictError(
                f"an experiment named {name!r} already exists in that folder (id {taken[0]})"
            )

    def update_experiment_status(
        self, workspace_id: int, experiment_id: int, status: str
    ) -> t.Experiment:
        with self.transaction() as conn:
            self._experiment_row(conn, workspace_id, experiment_id)
            conn.execute(
                "UPDATE experiments SET status=?, updated_ns=? WHERE id=?",
                (status, _now(), experiment_id),
            )
            return self.get_experiment(workspace_id, experiment_id)

    def move_experiment(
        self, workspace_id: int, experiment_id: int, folder_id: int
    ) -> t.Experiment:
        with self.transaction() as conn:
            row = self._experiment_row(conn, workspace_id, experiment_id)
            self._folder_row(conn, workspace_id, folder_id)
            if row[2] != folder_id:
                self._check_experiment_name(conn, folder_id, row[3])
                conn.execute(
                    "UPDATE experiments SET folder_id=?, updated_ns=? WHERE id=?",
                    (folder_id, _now(), experiment_id),
                )
            return self.get_experiment(workspace_id, experiment_id)

    # -- metrics --------------------------------------------------------------------------

    def list_metrics(
        self,
        workspace_id: int,
        experiment_id: int,
        metric_name: str | None,
        scale: str | None,
        limit: int | None,
    ) -> t.MetricList:
        """Every series of an experiment (optionally one metric or scale) with its points in
        step order; ``limit`` keeps the first points of each series."""
        query = "SELECT id, metric_name, scale, labels FROM series WHERE experiment_id=?"
        args: list[Any] = [experiment_id]
        if metric_name is not None:
            query += " AND metric_name=?"
            args.append(metric_name)
        if scale is not None:
            query += " AND scale=?"
            args.append(scale)
        with self.reading() as conn:
            self._experiment_row(conn, workspace_id, experiment_id)
            series = []
            for series_id, name, series_scale, labels in conn.execute(
                query + " ORDER BY metric_name, scale, labels", args
            ).fetchall():
                steps, values, timestamps = _chunks.read(conn, series_id, limit)
                points = [
                    t.MetricPoint(step, t.encode_value(value), timestamp)
                    for step, value, timestamp in zip(steps, values, timestamps, strict=True)
                ]
                series.append(
                    t.MetricSeries(name, series_scale, _labels_decoder.decode(labels), points)
                )
        return t.MetricList(experiment_id=experiment_id, series=series)

    def compare_metrics(self, workspace_id: int, request: t.CompareRequest) -> t.CompareResponse:
        """Several series aligned by step: one row per step any of them has (first ``limit``)."""
        if not request.series:
            raise InvalidRequestError("compare needs at least one series")
        columns: list[dict[int, float | int]] = []
        with self.reading() as conn:
            for wanted in request.series:
                self._experiment_row(conn, workspace_id, wanted.experiment_id)
                steps, values, _ = _chunks.read(conn, self._pick_series(conn, wanted))
                columns.append(dict(zip(steps, values, strict=True)))
        steps = sorted(set().union(*columns))[: max(0, request.limit)]
        rows = [
            t.CompareRow(
                step,
                [t.encode_value(c[step]) if step in c else None for c in columns],
            )
            for step in steps
        ]
        return t.CompareResponse(series=request.series, rows=rows)

    @staticmethod
    def _pick_series(conn: sqlite3.Connection, wanted: t.ComparisonMetricSeries) -> int:
        query = "SELECT id, labels FROM series WHERE experiment_id=? AND metric_name=?"
        args: list[Any] = [wanted.experiment_id, wanted.metric_name]
        if wanted.metadata_key is not None:
            query += " AND json_extract(labels, ?) IS ?"
            args += [_json_path(wanted.metadata_key), wanted.metadata_value]
        rows = conn.execute(query, args).fetchall()
        where = f"experiment {wanted.experiment_id}, metric {wanted.metric_name!r}" + (
            f", {wanted.metadata_key}={wanted.metadata_value!r}" if wanted.metadata_key else ""
        )
        if not rows:
            raise NotFoundError(f"no series for {where}")
        if len(rows) > 1:
            label_sets = ", ".join(str(r[1]) for r in rows[:5])
            raise InvalidRequestError(
                f"{len(rows)} series match {where} (labels {label_sets}); narrow it with "
                "metadata_key and metadata_value"
            )
        return int(rows[0][0])

    def metric_catalog(
        self, workspace_id: int, folder_id: int | None
    ) -> list[t.MetricCatalogEntry]:
        """Every metric name in the workspace (or under a folder), with its scales, label keys
        and how many experiments and series carry it."""
        with self.reading() as conn:
            scope, args = self._experiment_scope(conn, workspace_id, folder_id)
            entries: dict[str, t.MetricCatalogEntry] = {}
            for name, scales, experiments, count in conn.execute(
                "SELECT metric_name, group_concat(DISTINCT scale), "
                "COUNT(DISTINCT experiment_id), COUNT(*) FROM series "
                f"WHERE experiment_id IN ({scope}) GROUP BY metric_name ORDER BY metric_name",
                args,
            ):
                entries[name] = t.MetricCatalogEntry(
                    metric_name=name,
                    scales=sorted(str(scales).split(",")),
                    label_keys=[],
                    experiments=experiments,
                    series=count,
                )
            for name, key in conn.execute(
                "SELECT DISTINCT s.metric_name, j.key FROM series s, json_each(s.labels) j "
                f"WHERE s.experiment_id IN ({scope}) ORDER BY j.key",
                args,
            ):
                entries[name].label_keys.append(key)
        return list(entries.values())

    def _experiment_scope(
        self, conn: sqlite3.Connection, workspace_id: int, folder_id: int | None
    ) -> tuple[str, list[Any]]:
        if folder_id is None:
            return "SELECT id FROM experiments WHERE workspace_id=?", [workspace_id]
        self._folder_row(conn, workspace_id, folder_id)
        folders = self._folder_subtree(conn, folder_id)
        marks = ",".join("?" * len(folders))
        return f"SELECT id FROM experiments WHERE folder_id IN ({marks})", list(folders)

    def metric_catalog_values(
        self, workspace_id: int, metric_name: str, label_key: str
    ) -> t.MetricCatalogValues:
        """The distinct values a label takes on a metric across the workspace."""
        with self.reading() as conn:
            values = [
                str(r[0])
                for r in conn.execute(
                    "SELECT DISTINCT json_extract(s.labels, ?) AS v FROM series s "
                    "JOIN experiments e ON e.id = s.experiment_id "
                    "WHERE e.workspace_id=? AND s.metric_name=? AND v IS NOT NULL ORDER BY v",
                    (_json_path(label_key), workspace_id, metric_name),
                )
            ]
        return t.MetricCatalogValues(metric_name=metric_name, label_key=label_key, values=values)

    def ingest_json(
        self, workspace_id: int, experiment_id: int, metrics: Sequence[t.IngestMetric]
    ) -> t.IngestResult:
        """Store JSON-ingested points in one transaction. A ``client_event_id`` seen before, or a
        (series, step) already stored, counts as a duplicate; an omitted step continues the
        series after its last stored step."""
        duplicates = 0
        batch: dict[SeriesKey, SeriesColumns] = {}
        now = time.time_ns()
        with self.transaction() as conn:
            self._experiment_row(conn, workspace_id, experiment_id)
            next_steps: dict[SeriesKey, int] = {}
            for metric in metrics:
                _check_name("metric_name", metric.metric_name)
                seen = conn.execute(
                    "INSERT OR IGNORE INTO client_events (experiment_id, client_event_id) "
                    "VALUES (?,?)",
                    (experiment_id, metric.client_event_id),
                ).rowcount
                if not seen:
                    duplicates += 1
                    continue
                key = (metric.metric_name, metric.scale, _json.encode(metric.labels).decode())
                step = metric.step
                if step is None:
                    step = next_steps.get(key)
                    if step is None:
                        last = _chunks.last_step(conn, self._series_id(conn, experiment_id, key))
                        step = 0 if last is None else last + 1
                if step < 0:
                    raise InvalidRequestError(f"step {step} of {metric.metric_name!r} is < 0")
                next_steps[key] = max(step + 1, next_steps.get(key, 0))
                columns = batch.setdefault(key, SeriesColumns([], [], []))
                columns.steps.append(step)
                columns.values.append(t.decode_value(metric.value))
                columns.timestamps.append(metric.timestamp_ns or now)
            result = self._write_columns(conn, experiment_id, batch)
        return t.IngestResult(accepted=result.accepted, duplicates=duplicates + result.duplicates)

    # -- annotations ----------------------------------------------------------------------

    def create_annotation(
        self, workspace_id: int, experiment_id: int, request: t.AnnotationCreate
    ) -> t.Annotation:
        if not request.text:
            raise InvalidRequestError("an annotation needs a non-empty text")
        now = _now()
        with self.transaction() as conn:
            self._experiment_row(conn, workspace_id, experiment_id)
            cursor = conn.execute(
                "INSERT INTO annotations (experiment_id, text, step, timestamp_ns, metadata, "
                "created_ns) VALUES (?,?,?,?,?,?)",
                (
                    experiment_id,
                    request.text,
                    request.step,
                    request.timestamp_ns or now,
                    _json.encode(request.metadata).decode(),
                    now,
                ),
            )
        return t.Annotation(
            id=int(cursor.lastrowid or 0),
            experiment_id=experiment_id,
            text=request.text,
            step=request.step,
            timestamp_ns=request.timestamp_ns or now,
            metadata=request.metadata,
            created_ns=now,
        )

    def list_annotations(self, workspace_id: int, experiment_id: int) -> list[t.Annotation]:
        with self.reading() as conn:
            self._experiment_row(conn, workspace_id, experiment_id)
            rows = conn.execute(
                "SELECT id, experiment_id, text, step, timestamp_ns, metadata, created_ns "
                "FROM annotations WHERE experiment_id=? ORDER BY id",
                (experiment_id,),
            ).fetchall()
        return [
            t.Annotation(r[0], r[1], r[2], r[3], r[4], _any_decoder.decode(r[5]), r[6])
            for r in rows
        ]

    # -- idempotent requests --------------------------------------------------------------

    def idempotent(
        self, scope: str, key: str, fingerprint: str, action: Callable[[], tuple[int, bytes]]
    ) -> tuple[int, bytes]:
        """Run ``action`` once per (scope, key), in the same transaction as its record; a
        repeated key answers the first answer again without acting."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT fingerprint, status, body FROM idempotency WHERE scope=? AND key=?",
                (scope, key),
            ).fetchone()
            if row is not None:
                if row[0] != fingerprint:
                    raise ConflictError(
                        f"Idempotency-Key {key!r} was already used for a different request; "
                        "generate a new key for each logical request"
                    )
                return int(row[1]), bytes(row[2])
            status, body = action()
            conn.execute(
                "INSERT INTO idempotency (scope, key, fingerprint, status, body, created_ns) "
                "VALUES (?,?,?,?,?,?)",
                (scope, key, fingerprint, status, body, _now()),
            )
            return status, body

    def forget_idempotency(self, older_than_ns: int) -> int:
        """Drop idempotency records older than a cutoff; answer how many."""
        with self.transaction() as conn:
            return conn.execute(
                "DELETE FROM idempotency WHERE created_ns < ?", (older_than_ns,)
            ).rowcount


def _now() -> int:
    return time.time_ns()


def _json_path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


def _check_name(what: str, name: str) -> None:
    if not name or len(name) > 256:
        raise InvalidRequestError(f"{what} must be 1-256 characters, got {name!r}")
