"""``metrana.api.AsyncClient``: the typed asyncio REST client, with the surface of
:class:`~._client.Client` (every method a coroutine, ``aclose()`` for ``close()``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from .._retry import RetryPolicy
from . import _types as t
from ._errors import MetricsApiError
from ._operations import Operations, open_operations
from ._transport import Op, adrive, needs_tls

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
    """A Metrana server's REST API for asyncio code: the methods and arguments of
    :class:`Client`, awaited. ``transport`` is an ``httpx.AsyncBaseTransport``.

    Use it as an async context manager, or call :meth:`aclose`.
    """

    def __init__(
        self,
        api_key: str,
        host: str | None = None,
        timeout: float = 10.0,
        ingest_timeout: float = 60.0,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._ops: Operations = open_operations(api_key, host, timeout, ingest_timeout, retry)
        self._http = httpx.AsyncClient(
            transport=transport, timeout=timeout, verify=needs_tls(self._ops.host)
        )

    @property
    def host(self) -> str:
        """The server's base URL (without ``/api/v1``)."""
        return self._ops.host

    def __repr__(self) -> str:
        return f"AsyncClient(host={self.host!r})"

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

    # -- auth ---------------------------------------------------------------------------

    async def auth_status(self) -> t.AuthStatus:
        """The workspace and key the server sees for this client's API key."""
        return await self._run(self._ops.auth_status())

    # -- folders ------------------------------------------------------------------------

    async def list_folders(self, parent_id: int | None = None) -> list[t.Folder]:
        """The folders under ``parent_id`` (the top-level folders, i.e. projects, if None)."""
        return await self._run(self._ops.list_folders(parent_id))

    async def create_folder(
        self, name: str, parent_id: int | None = None, description: str = ""
    ) -> t.Folder:
        """A new folder ``name`` under ``parent_id`` (top level if None)."""
        return await self._run(self._ops.create_folder(name, parent_id, description))

    async def get_folder(self, folder_id: int) -> t.Folder:
        """One folder."""
        return await self._run(self._ops.get_folder(folder_id))

    async def patch_folder(self, folder_id: int, *, description: str | None = None) -> t.Folder:
        """Change a folder's description (None leaves it as it is)."""
        return await self._run(self._ops.patch_folder(folder_id, description))

    async def rename_folder(self, folder_id: int, name: str) -> t.Folder:
        """Give a folder a new name."""
        return await self._run(self._ops.rename_folder(folder_id, name))

    async def move_folder(self, folder_id: int, parent_id: int | None) -> t.Folder:
        """Move a folder under ``parent_id`` (to the top level if None)."""
        return await self._run(self._ops.move_folder(folder_id, parent_id))

    # -- experiments --------------------------------------------------------------------

    async def list_experiments(
        self, folder_id: int | None = None, status: str | None = None
    ) -> list[t.Experiment]:
        """The experiments of a folder (of the workspace if None), optionally by status."""
        return await self._run(self._ops.list_experiments(folder_id, status))

    async def create_experiment(
        self,
        folder_id: int,
        name: str,
        description: str = "",
        metadata: Mapping[str, Any] | None = None,
        status: str = "running",
    ) -> t.Experiment:
        """A new experiment ``name`` in ``folder_id``."""
        return await self._run(
            self._ops.create_experiment(folder_id, name, description, metadata, status)
        )

    async def get_experiment(self, experiment_id: int) -> t.Experiment:
        """One experiment."""
        return await self._run(self._ops.get_experiment(experiment_id))

    async def update_experiment_status(self, experiment_id: int, status: str) -> t.Experiment:
        """Set an experiment's status: running, finished, crashed, failed or cancelled."""
        return await self._run(self._ops.update_experiment_status(experiment_id, status))

    async def move_experiment(self, experiment_id: int, folder_id: int) -> t.Experiment:
        """Move an experiment to another folder."""
        return await self._run(self._ops.move_experiment(experiment_id, folder_id))

    async def run_handshake(self, request: t.RunHandshakeRequest) -> t.RunHandshakeResponse:
        """Create or resume the experiment of a run, with the last step of each series."""
        return await self._run(self._ops.run_handshake(request))

    # -- metrics ------------------------------------------------------------------------

    async def list_metrics(
        self,
        experiment_id: int,
        metric_name: str | None = None,
        scale: str | None = None,
        limit: int | None = None,
    ) -> t.MetricList:
        """The series of an experiment and their points, optionally narrowed to one metric
        and scale, with at most ``limit`` points per series."""
        return await self._run(self._ops.list_metrics(experiment_id, metric_name, scale, limit))

    async def compare_metrics(
        self, series: Sequence[t.ComparisonMetricSeries], limit: int = 1000
    ) -> t.CompareResponse:
        """Several series side by side, one row per step (at most ``limit`` rows)."""
        return await self._run(self._ops.compare_metrics(series, limit))

    async def ingest_metrics(
        self,
        experiment_id: int,
        metrics: Sequence[t.IngestMetric | Mapping[str, Any]],
        sync: bool = True,
    ) -> t.IngestResult:
        """Store points in an experiment. A mapping is read as an :class:`IngestMetric`
        (a ``client_event_id`` is generated when missing; NaN and infinities are allowed).

        The points are sent with an ingestion key of the experiment, minted on first use and
        kept in memory (see :meth:`forget_ingestion_credential`); a point sent twice is
        stored once."""
        return await self._run(self._ops.ingest_metrics(experiment_id, metrics, sync))

    def forget_ingestion_credential(self, experiment_id: int) -> None:
        """Drop the ingestion key minted for ``experiment_id``; the next ingest mints another."""
        self._ops.forget_ingestion_credential(experiment_id)

    async def list_metric_catalog(self, folder_id: int | None = None) -> list[t.MetricCatalogEntry]:
        """The metric names in use (under ``folder_id``, or in the whole workspace)."""
        return await self._run(self._ops.list_metric_catalog(folder_id))

    async def inspect_metric_catalog_values(
        self, metric_name: str, label_key: str
    ) -> t.MetricCatalogValues:
        """The values label ``label_key`` takes on metric ``metric_name``."""
        return await self._run(self._ops.inspect_metric_catalog_values(metric_name, label_key))

    # -- ingestion keys -----------------------------------------------------------------

    async def list_ingestion_keys(self, experiment_id: int) -> list[t.IngestionKey]:
        """The ingestion keys of an experiment (secrets are never shown again)."""
        return await self._run(self._ops.list_ingestion_keys(experiment_id))

    async def create_ingestion_key(
        self, experiment_id: int, name: str = "default", ttl_ms: int | None = None
    ) -> t.IngestionKeyCreated:
        """A new ingestion key for one experiment, living ``ttl_ms`` (at most 7 days; the
        server's default, a day unless it was started otherwise, when None); its ``secret``
        is shown only here."""
        return await self._run(self._ops.create_ingestion_key(experiment_id, name, ttl_ms))

    async def revoke_ingestion_key(self, key_id: int) -> t.IngestionKey:
        """Revoke an ingestion key; requests presenting it are refused from now on."""
        return await self._run(self._ops.revoke_ingestion_key(key_id))

    # -- annotations --------------------------------------------------------------------

    async def list_annotations(self, experiment_id: int) -> list[t.Annotation]:
        """The annotations of an experiment."""
        return await self._run(self._ops.list_annotations(experiment_id))

    async def create_annotation(
        self,
        experiment_id: int,
        text: str,
        step: int | None = None,
        timestamp_ns: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> t.Annotation:
        """Annotate an experiment, optionally at a step and a time (``timestamp_ns``)."""
        return await self._run(
            self._ops.create_annotation(experiment_id, text, step, timestamp_ns, metadata)
        )
