"""``metrana.AsyncClient``: the surface of :class:`~._client.Client` for asyncio code, every
call a coroutine driving the same definition in :mod:`._operations`."""

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
from ._transport import Op, adrive, needs_tls

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient(ClientSettings[httpx.AsyncBaseTransport]):
    """:class:`Client` for asyncio: the same constructor (``transport`` is an
    ``httpx.AsyncBaseTransport``), methods, arguments and answers, every call awaited
    (``forget_ingestion_credential``, which sends nothing, is a plain method). Use it as an
    async context manager, or call :meth:`aclose`.
    """

    def _connect(self, transport: httpx.AsyncBaseTransport | None) -> None:
        self._http = httpx.AsyncClient(
            transport=transport, timeout=self.timeout, verify=needs_tls(self.host)
        )

    async def _run(self, op: Op[T]) -> T:
        if self._http.is_closed:
            op.close()
            raise MetricsApiError("this AsyncClient is closed")
        return await adrive(self._http, op)

    # -- lifecycle ----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connection pool; the client cannot be used afterwards."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- auth, folders ------------------------------------------------------------------

    async def auth_status(self) -> t.AuthStatusResponse:
        """Who the API key is: ``auth.kind`` and its ``organization``."""
        return await self._run(self._ops.auth_status())

    async def list_folders(self, *, path: str | None = None) -> t.FoldersResponse:
        """Every folder of the organization, or only the one whose ``path_name`` is ``path``."""
        return await self._run(self._ops.list_folders(path))

    async def create_folder(self, name: str, *, parent_id: str | None = None) -> t.FolderResponse:
        """A new folder ``name`` under ``parent_id`` (at the top level if None)."""
        return await self._run(self._ops.create_folder(name, parent_id))

    async def get_folder(self, folder_id: str) -> t.FolderContentsResponse:
        """A folder with its sub-folders and experiments."""
        return await self._run(self._ops.get_folder(folder_id))

    async def patch_folder(
        self,
        folder_id: str,
        *,
        name: str | None = None,
        parent_id: str | msgspec.UnsetType | None = UNSET,
    ) -> t.FolderResponse:
        """Rename (``name``) and/or move (``parent_id``; None: to the top level) a folder."""
        return await self._run(self._ops.patch_folder(folder_id, name, parent_id))

    async def rename_folder(self, folder_id: str, name: str) -> t.FolderResponse:
        """``patch_folder(folder_id, name=name)``."""
        return await self.patch_folder(folder_id, name=name)

    async def move_folder(self, folder_id: str, parent_id: str | None) -> t.FolderResponse:
        """``patch_folder(folder_id, parent_id=parent_id)``."""
        return await self.patch_folder(folder_id, parent_id=parent_id)

    # -- experiments --------------------------------------------------------------------

    async def list_experiments(
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
        return await self._run(
            self._ops.list_experiments(status, slug, search, from_ms, to_ms, limit)
        )

    async def create_experiment(
        self,
        slug: str,
        *,
        description: str = "",
        metadata: Mapping[str, Any] | None = None,
        folder_id: str | msgspec.UnsetType | None = UNSET,
    ) -> t.ExperimentResponse:
        """A new experiment (status ``created``), in folder ``folder_id`` or at the root."""
        return await self._run(self._ops.create_experiment(slug, description, metadata, folder_id))

    async def get_experiment(self, experiment_id: str) -> t.ExperimentResponse:
        """One experiment."""
        return await self._run(self._ops.get_experiment(experiment_id))

    async def update_experiment_status(
        self,
        experiment_id: str,
        status: t.TrackingStatus,
        *,
        error: t.ExperimentStatusError | Mapping[str, Any] | None = None,
        timestamp_ms: int | None = None,
    ) -> t.ExperimentResponse:
        """Mark an experiment ``running``, ``done`` or ``error`` (with ``error``'s name and
        detail), at ``timestamp_ms`` (default: now)."""
        return await self._run(
            self._ops.update_experiment_status(experiment_id, status, error, timestamp_ms)
        )

    async def move_experiment(
        self, experiment_id: str, folder_id: str | None
    ) -> t.ExperimentResponse:
        """Move an experiment into ``folder_id`` (to the root if None)."""
        return await self._run(self._ops.move_experiment(experiment_id, folder_id))

    async def run_handshake(self, request: t.RunHandshakeRequest) -> t.RunHandshakeResponse:
        """Metrana's: create or resume the experiment of a run, with the last step of each
        series (used by the dispatcher)."""
        return await self._run(self._ops.run_handshake(request))

    # -- metrics ------------------------------------------------------------------------

    async def list_metrics(
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
        return await self._run(
            self._ops.list_metrics(
                experiment_id,
                metric_name=metric_name,
                metadata_key=metadata_key,
                metadata_value=metadata_value,
                metadata_value_json=metadata_value_json,
                filters=filters,
            )
        )

    async def compare_metrics(
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
        return await self._run(self._ops.compare_metrics(series, filters))

    async def ingest_metrics(
        self,
        experiment_id: str,
        data: Sequence[t.MetricCreateInput | Mapping[str, Any]],
        *,
        sync: bool | None = None,
    ) -> t.IngestResponse:
        """Store up to 1,000 metric events, with the experiment's ingestion key (minted and
        cached by this client). An event whose ``client_event_id`` was stored is not stored
        again; ``sync=True`` answers once they are stored."""
        return await self._run(self._ops.ingest_metrics(experiment_id, data, sync))

    async def list_metric_catalog(
        self, experiment_id: str, *, limit: int | None = None
    ) -> t.MetricCatalogResponse:
        """The metric names of an experiment, with the metadata keys each uses."""
        return await self._run(self._ops.list_metric_catalog(experiment_id, limit))

    async def inspect_metric_catalog_values(
        self,
        experiment_id: str,
        metric: str,
        *,
        key: str | Sequence[str] | None = None,
        limit: int | None = None,
    ) -> t.MetricCatalogValuesResponse:
        """The values each metadata key (or only ``key``) takes on ``metric``."""
        return await self._run(
            self._ops.inspect_metric_catalog_values(experiment_id, metric, key, limit)
        )

    # -- ingestion keys -----------------------------------------------------------------

    async def list_ingestion_keys(self, experiment_id: str) -> t.IngestionKeysResponse:
        """The ingestion keys of an experiment (their tokens are never shown again)."""
        return await self._run(self._ops.list_ingestion_keys(experiment_id))

    async def create_ingestion_key(
        self,
        experiment_id: str,
        *,
        name: str = DEFAULT_INGESTION_KEY_NAME,
        ttl_ms: int | None = None,
    ) -> t.IngestionKeyCreateResponse:
        """A new ingestion key of an experiment, living ``ttl_ms`` (at most 7 days; the
        server's default, a day, if None); its ``token`` is shown only here."""
        return await self._run(self._ops.create_ingestion_key(experiment_id, name, ttl_ms))

    async def revoke_ingestion_key(self, experiment_id: str, key_id: str) -> t.IngestionKeyResponse:
        """Revoke an ingestion key: requests presenting it get 401 from now on."""
        return await self._run(self._ops.revoke_ingestion_key(experiment_id, key_id))

    def forget_ingestion_credential(self, experiment_id: str) -> None:
        """Drop the ingestion key this client cached for ``experiment_id`` (nothing is sent);
        the next ingest mints another."""
        self._ops.forget_ingestion_credential(experiment_id)

    # -- annotations --------------------------------------------------------------------

    async def list_annotations(
        self,
        experiment_id: str,
        *,
        from_ms: int | None = None,
        to_ms: int | None = None,
        limit: int | None = None,
    ) -> t.AnnotationsResponse:
        """The annotations of an experiment, by creation time."""
        return await self._run(self._ops.list_annotations(experiment_id, from_ms, to_ms, limit))

    async def chart_series(
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
        return await self._run(
            self._ops.chart_series(experiment_id, metric_names, width, from_step, to_step)
        )

    async def experiment_summaries(
        self, experiment_ids: Sequence[str] = (), metric_names: Sequence[str] = ()
    ) -> ct.ExperimentSummariesResponse:
        """Experiments' (those given, or all) series and point counts, and the last value of
        each series of ``metric_names`` (Metrana's, for the dashboard's home table)."""
        return await self._run(self._ops.experiment_summaries(experiment_ids, metric_names))

    async def create_login_token(self, *, ttl_ms: int | None = None) -> ct.LoginTokenResponse:
        """A one-time dashboard login URL for this key's organization (Metrana's)."""
        return await self._run(self._ops.create_login_token(ttl_ms))

    async def create_annotation(
        self,
        experiment_id: str,
        annotation: str,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> t.ExperimentAnnotationResponse:
        """Annotate an experiment (with its ingestion key, as ``ingest_metrics``)."""
        return await self._run(self._ops.create_annotation(experiment_id, annotation, metadata))
