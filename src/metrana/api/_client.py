"""``metrana.Client``: the Syvain Metrics API client's surface, blocking.

Each method drives the one definition of its call in :mod:`._operations` with blocking I/O;
:class:`~._async_client.AsyncClient` drives the same definitions with asyncio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx
import msgspec
from msgspec import UNSET

from . import _chart_types as ct
from . import _types as t
from ._errors import MetricsApiError
from ._operations import row_filters
from ._settings import DEFAULT_INGESTION_KEY_NAME, ClientSettings
from ._transport import Op, drive, needs_tls

__all__ = ["Client"]

T = TypeVar("T")


class Client(ClientSettings[httpx.BaseTransport]):
    """The Syvain Metrics REST API (``/api/v1``) of a Metrana server, one method per endpoint,
    with the signatures and answers of ``SyvainMetricsApiClient`` 0.0.62.

    ``auth``: an API key, ``"local"`` (``auth.json``, written by ``metrana login``) or a
    :class:`ClientCredentials`. ``host`` overrides its host (default ``METRANA_HOST``, else
    ``http://127.0.0.1:8765``). ``timeout`` applies to ordinary calls, ``ingest_timeout`` to
    ``ingest_metrics``. Metrana's additions: ``retry`` (a :class:`RetryPolicy`; default from
    ``METRANA_RETRY_*``) and ``transport`` (an ``httpx`` transport, such as
    ``httpx.MockTransport`` in tests).

    Transient failures are retried with full-jitter backoff, honouring ``Retry-After``; every
    POST and PATCH but ``create_ingestion_key`` carries one ``Idempotency-Key`` for all its
    attempts. Errors derive from :class:`MetricsApiError`. Use the client as a context manager,
    or call :meth:`close`; one client may be shared by the threads of a process.
    """

    def _connect(self, transport: httpx.BaseTransport | None) -> None:
        self._http = httpx.Client(
            transport=transport, timeout=self.timeout, verify=needs_tls(self.host)
        )

    def _run(self, op: Op[T]) -> T:
        if self._http.is_closed:
            op.close()
            raise MetricsApiError("this Client is closed")
        return drive(self._http, op)

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool; the client cannot be used afterwards."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- auth, folders ------------------------------------------------------------------

    def auth_status(self) -> t.AuthStatusResponse:
        """Who the API key is: ``auth.kind`` and its ``organization``."""
        return self._run(self._ops.auth_status())

    def list_folders(self, *, path: str | None = None) -> t.FoldersResponse:
        """Every folder of the organization, or only the one whose ``path_name`` is ``path``."""
        return self._run(self._ops.list_folders(path))

    def create_folder(self, name: str, *, parent_id: str | None = None) -> t.FolderResponse:
        """A new folder ``name`` under ``parent_id`` (at the top level if None)."""
        return self._run(self._ops.create_folder(name, parent_id))

    def get_folder(self, folder_id: str) -> t.FolderContentsResponse:
        """A folder with its sub-folders and experiments."""
        return self._run(self._ops.get_folder(folder_id))

    def patch_folder(
        self,
        folder_id: str,
        *,
        name: str | None = None,
        parent_id: str | msgspec.UnsetType | None = UNSET,
    ) -> t.FolderResponse:
        """Rename (``name``) and/or move (``parent_id``; None: to the top level) a folder."""
        return self._run(self._ops.patch_folder(folder_id, name, parent_id))

    def rename_folder(self, folder_id: str, name: str) -> t.FolderResponse:
        """``patch_folder(folder_id, name=name)``."""
        return self.patch_folder(folder_id, name=name)

    def move_folder(self, folder_id: str, parent_id: str | None) -> t.FolderResponse:
        """``patch_folder(folder_id, parent_id=parent_id)``."""
        return self.patch_folder(folder_id, parent_id=parent_id)

    # -- experiments --------------------------------------------------------------------

    def list_experiments(
        self,
        *,
        status: str | None = None,
        slug: str | None = None,
        search: str | None = None,
        from_ms: int | None = None,
        to_ms: int | None = None,
        limit: int | None = None,
    ) -> t.ExperimentsResponse:
        """The organization's experiments, by status, slug, text in the slug or description,
        and creation time (``from_ms`` inclusive, ``to_ms`` exclusive)."""
        return self._run(self._ops.list_experiments(status, slug, search, from_ms, to_ms, limit))

    def create_experiment(
        self,
        slug: str,
        *,
        description: str = "",
        metadata: Mapping[str, Any] | None = None,
        folder_id: str | msgspec.UnsetType | None = UNSET,
    ) -> t.ExperimentResponse:
        """A new experiment (status ``created``), in folder ``folder_id`` or at the root."""
        return self._run(self._ops.create_experiment(slug, description, metadata, folder_id))

    def get_experiment(self, experiment_id: str) -> t.ExperimentResponse:
        """One experiment."""
        return self._run(self._ops.get_experiment(experiment_id))

    def update_experiment_status(
        self,
        experiment_id: str,
        status: t.TrackingStatus,
        *,
        error: t.ExperimentStatusError | Mapping[str, Any] | None = None,
        timestamp_ms: int | None = None,
    ) -> t.ExperimentResponse:
        """Mark an experiment ``running``, ``done`` or ``error`` (with ``error``'s name and
        detail), at ``timestamp_ms`` (default: now)."""
        return self._run(
            self._ops.update_experiment_status(experiment_id, status, error, timestamp_ms)
        )

    def move_experiment(self, experiment_id: str, folder_id: str | None) -> t.ExperimentResponse:
        """Move an experiment into ``folder_id`` (to the root if None)."""
        return self._run(self._ops.move_experiment(experiment_id, folder_id))

    def run_handshake(self, request: t.RunHandshakeRequest) -> t.RunHandshakeResponse:
        """Metrana's: create or resume the experiment of a run, with the last step of each
        series (used by the dispatcher)."""
        return self._run(self._ops.run_handshake(request))

    # -- metrics ------------------------------------------------------------------------

    def list_metrics(
        self,
        experiment_id: str,
        *,
        metric_name: str | None = None,
        metadata_key: str | None = None,
        metadata_value: str | None = None,
        metadata_value_json: str | None = None,
        step: int | None = None,
        from_step: int | None = None,
        to_step: int | None = None,
        from_time: int | None = None,
        to_time: int | None = None,
        sort_by: Sequence[t.MetricRowSortKey] | None = None,
        sort_direction: t.SortDirection | None = None,
        limit: int | None = None,
        include_experiment_meta_as_of: bool | None = None,
    ) -> t.RowsResponse:
        """An experiment's metric events as rows: of one metric, of the events whose metadata
        ``metadata_key`` is ``metadata_value`` (as text) or ``metadata_value_json``, in step
        and client-time ranges (inclusive, ms), sorted, at most ``limit`` (default 1,000)."""
        filters = row_filters(
            step=step,
            from_step=from_step,
            to_step=to_step,
            from_time=from_time,
            to_time=to_time,
            sort_by=sort_by,
            sort_direction=sort_direction,
            limit=limit,
            include_experiment_meta_as_of=include_experiment_meta_as_of,
        )
        return self._run(
            self._ops.list_metrics(
                experiment_id,
                metric_name=metric_name,
                metadata_key=metadata_key,
                metadata_value=metadata_value,
                metadata_value_json=metadata_value_json,
                filters=filters,
            )
        )

    def compare_metrics(
        self,
        series: Sequence[t.ComparisonMetricSeries | Mapping[str, Any]],
        *,
        from_step: int | None = None,
        to_step: int | None = None,
        from_time: int | None = None,
        to_time: int | None = None,
        sort_by: Sequence[t.ComparisonSortKey] | None = None,
        sort_direction: t.SortDirection | None = None,
        limit: int | None = None,
        include_experiment_meta_as_of: bool | None = None,
    ) -> t.RowsResponse:
        """The rows of several series, of one or several experiments, in one answer."""
        filters = row_filters(
            from_step=from_step,
            to_step=to_step,
            from_time=from_time,
            to_time=to_time,
            sort_by=sort_by,
            sort_direction=sort_direction,
            limit=limit,
            include_experiment_meta_as_of=include_experiment_meta_as_of,
        )
        return self._run(self._ops.compare_metrics(series, filters))

    def ingest_metrics(
        self,
        experiment_id: str,
        data: Sequence[t.MetricCreateInput | Mapping[str, Any]],
        *,
        sync: bool | None = None,
    ) -> t.IngestResponse:
        """Store up to 1,000 metric events, with the experiment's ingestion key (minted and
        cached by this client). An event whose ``client_event_id`` was stored is not stored
        again; ``sync=True`` answers once they are stored."""
        return self._run(self._ops.ingest_metrics(experiment_id, data, sync))

    def list_metric_catalog(
        self, experiment_id: str, *, limit: int | None = None
    ) -> t.MetricCatalogResponse:
        """The metric names of an experiment, with the metadata keys each uses."""
        return self._run(self._ops.list_metric_catalog(experiment_id, limit))

    def inspect_metric_catalog_values(
        self,
        experiment_id: str,
        metric: str,
        *,
        key: str | Sequence[str] | None = None,
        limit: int | None = None,
    ) -> t.MetricCatalogValuesResponse:
        """The values each metadata key (or only ``key``) takes on ``metric``."""
        return self._run(self._ops.inspect_metric_catalog_values(experiment_id, metric, key, limit))

    # -- ingestion keys -----------------------------------------------------------------

    def list_ingestion_keys(self, experiment_id: str) -> t.IngestionKeysResponse:
        """The ingestion keys of an experiment (their tokens are never shown again)."""
        return self._run(self._ops.list_ingestion_keys(experiment_id))

    def create_ingestion_key(
        self,
        experiment_id: str,
        *,
        name: str = DEFAULT_INGESTION_KEY_NAME,
        ttl_ms: int | None = None,
    ) -> t.IngestionKeyCreateResponse:
        """A new ingestion key of an experiment, living ``ttl_ms`` (at most 7 days; the
        server's default, a day, if None); its ``token`` is shown only here."""
        return self._run(self._ops.create_ingestion_key(experiment_id, name, ttl_ms))

    def revoke_ingestion_key(self, experiment_id: str, key_id: str) -> t.IngestionKeyResponse:
        """Revoke an ingestion key: requests presenting it get 401 from now on."""
        return self._run(self._ops.revoke_ingestion_key(experiment_id, key_id))

    def forget_ingestion_credential(self, experiment_id: str) -> None:
        """Drop the ingestion key this client cached for ``experiment_id`` (nothing is sent);
        the next ingest mints another."""
        self._ops.forget_ingestion_credential(experiment_id)

    # -- annotations --------------------------------------------------------------------

    def list_annotations(
        self,
        experiment_id: str,
        *,
        from_ms: int | None = None,
        to_ms: int | None = None,
        limit: int | None = None,
    ) -> t.AnnotationsResponse:
        """The annotations of an experiment, by creation time."""
        return self._run(self._ops.list_annotations(experiment_id, from_ms, to_ms, limit))

    def chart_series(
        self,
        experiment_id: str,
        metric_names: Sequence[str] = (),
        *,
        width: int | None = None,
        from_step: int | None = None,
        to_step: int | None = None,
    ) -> ct.ChartSeriesResponse:
        """An experiment's series (those named, or all) downsampled to about ``width`` points
        each over a step range, non-finite values as marks (Metrana's, for charts)."""
        return self._run(
            self._ops.chart_series(experiment_id, metric_names, width, from_step, to_step)
        )

    def experiment_summaries(
        self, experiment_ids: Sequence[str] = (), metric_names: Sequence[str] = ()
    ) -> ct.ExperimentSummariesResponse:
        """Experiments' (those given, or all) series and point counts, and the last value of
        each series of ``metric_names`` (Metrana's, for the dashboard's home table)."""
        return self._run(self._ops.experiment_summaries(experiment_ids, metric_names))

    def create_login_token(self, *, ttl_ms: int | None = None) -> ct.LoginTokenResponse:
        """A one-time dashboard login URL for this key's organization (Metrana's)."""
        return self._run(self._ops.create_login_token(ttl_ms))

    def create_annotation(
        self,
        experiment_id: str,
        annotation: str,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> t.ExperimentAnnotationResponse:
        """Annotate an experiment (with its ingestion key, as ``ingest_metrics``)."""
        return self._run(self._ops.create_annotation(experiment_id, annotation, metadata))
