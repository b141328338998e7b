"""``metrana.api.Client``: the typed, blocking REST client.

Each method drives the one definition of its call in :mod:`._operations` with blocking I/O;
:class:`~._async_client.AsyncClient` drives the same definitions with asyncio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from .._retry import RetryPolicy
from . import _types as t
from ._errors import MetricsApiError
from ._operations import Operations, open_operations
from ._transport import Op, drive, needs_tls

__all__ = ["Client"]

T = TypeVar("T")


class Client:
    """A Metrana server's REST API (``/api/v1``), one method per endpoint.

    ``api_key`` is a workspace API key, or ``"local"`` for the credentials saved by
    ``metrana login`` (which also supply the host). ``host`` defaults to the saved host, then
    ``METRANA_HOST``, then ``http://127.0.0.1:8765``. Requests time out after ``timeout``
    seconds (``ingest_timeout`` for :meth:`ingest_metrics`); transient failures are retried with
    ``retry`` (default: :func:`metrana._config.retry_policy`, i.e. ``METRANA_RETRY_*``), and
    every write carries an ``Idempotency-Key`` shared by its retries, so a retried write is
    applied once. ``transport`` replaces the HTTP transport (``httpx.MockTransport`` in tests).

    Errors: :class:`MetricsApiRequestError` (an error answer; ``status_code`` None when the
    server could not be reached), :class:`MetricsApiResponseError` (an answer of the wrong shape),
    :class:`MetricsApiAuthError` (``"local"`` without saved credentials).

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        api_key: str,
        host: str | None = None,
        timeout: float = 10.0,
        ingest_timeout: float = 60.0,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._ops: Operations = open_operations(api_key, host, timeout, ingest_timeout, retry)
        self._http = httpx.Client(
            transport=transport, timeout=timeout, verify=needs_tls(self._ops.host)
        )

    @property
    def host(self) -> str:
        """The server's base URL (without ``/api/v1``)."""
        return self._ops.host

    def __repr__(self) -> str:
        return f"Client(host={self.host!r})"

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

    # -- auth ---------------------------------------------------------------------------

    def auth_status(self) -> t.AuthStatus:
        """The workspace and key the server sees for this client's API key."""
        return self._run(self._ops.auth_status())

    # -- folders ------------------------------------------------------------------------

    def list_folders(self, parent_id: int | None = None) -> list[t.Folder]:
        """The folders under ``parent_id`` (the top-level folders, i.e. projects, if None)."""
        return self._run(self._ops.list_folders(parent_id))

    def create_folder(
        self, name: str, parent_id: int | None = None, description: str = ""
    ) -> t.Folder:
        """A new folder ``name`` under ``parent_id`` (top level if None)."""
        return self._run(self._ops.create_folder(name, parent_id, description))

    def get_folder(self, folder_id: int) -> t.Folder:
        """One folder."""
        return self._run(self._ops.get_folder(folder_id))

    def patch_folder(self, folder_id: int, *, description: str | None = None) -> t.Folder:
        """Change a folder's description (None leaves it as it is)."""
        return self._run(self._ops.patch_folder(folder_id, description))

    def rename_folder(self, folder_id: int, name: str) -> t.Folder:
        """Give a folder a new name."""
        return self._run(self._ops.rename_folder(folder_id, name))

    def move_folder(self, folder_id: int, parent_id: int | None) -> t.Folder:
        """Move a folder under ``parent_id`` (to the top level if None)."""
        return self._run(self._ops.move_folder(folder_id, parent_id))

    # -- experiments --------------------------------------------------------------------

    def list_experiments(
        self, folder_id: int | None = None, status: str | None = None
    ) -> list[t.Experiment]:
        """The experiments of a folder (of the workspace if None), optionally by status."""
        return self._run(self._ops.list_experiments(folder_id, status))

    def create_experiment(
        self,
        folder_id: int,
        name: str,
        description: str = "",
        metadata: Mapping[str, Any] | None = None,
        status: str = "running",
    ) -> t.Experiment:
        """A new experiment ``name`` in ``folder_id``."""
        return self._run(
            self._ops.create_experiment(folder_id, name, description, metadata, status)
        )

    def get_experiment(self, experiment_id: int) -> t.Experiment:
        """One experiment."""
        return self._run(self._ops.get_experiment(experiment_id))

    def update_experiment_status(self, experiment_id: int, status: str) -> t.Experiment:
        """Set an experiment's status: running, finished, crashed, failed or cancelled."""
        return self._run(self._ops.update_experiment_status(experiment_id, status))

    def move_experiment(self, experiment_id: int, folder_id: int) -> t.Experiment:
        """Move an experiment to another folder."""
        return self._run(self._ops.move_experiment(experiment_id, folder_id))

    def run_handshake(self, request: t.RunHandshakeRequest) -> t.RunHandshakeResponse:
        """Create or resume the experiment of a run, with the last step of each series."""
        return self._run(self._ops.run_handshake(request))

    # -- metrics ------------------------------------------------------------------------

    def list_metrics(
        self,
        experiment_id: int,
        metric_name: str | None = None,
        scale: str | None = None,
        limit: int | None = None,
    ) -> t.MetricList:
        """The series of an experiment and their points, optionally narrowed to one metric
        and scale, with at most ``limit`` points per series."""
        return self._run(self._ops.list_metrics(experiment_id, metric_name, scale, limit))

    def compare_metrics(
        self, series: Sequence[t.ComparisonMetricSeries], limit: int = 1000
    ) -> t.CompareResponse:
        """Several series side by side, one row per step (at most ``limit`` rows)."""
        return self._run(self._ops.compare_metrics(series, limit))

    def ingest_metrics(
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
        return self._run(self._ops.ingest_metrics(experiment_id, metrics, sync))

    def forget_ingestion_credential(self, experiment_id: int) -> None:
        """Drop the ingestion key minted for ``experiment_id``; the next ingest mints another."""
        self._ops.forget_ingestion_credential(experiment_id)

    def list_metric_catalog(self, folder_id: int | None = None) -> list[t.MetricCatalogEntry]:
        """The metric names in use (under ``folder_id``, or in the whole workspace)."""
        return self._run(self._ops.list_metric_catalog(folder_id))

    def inspect_metric_catalog_values(
        self, metric_name: str, label_key: str
    ) -> t.MetricCatalogValues:
        """The values label ``label_key`` takes on metric ``metric_name``."""
        return self._run(self._ops.inspect_metric_catalog_values(metric_name, label_key))

    # -- ingestion keys -----------------------------------------------------------------

    def list_ingestion_keys(self, experiment_id: int) -> list[t.IngestionKey]:
        """The ingestion keys of an experiment (secrets are never shown again)."""
        return self._run(self._ops.list_ingestion_keys(experiment_id))

    def create_ingestion_key(
        self, experiment_id: int, name: str = "default", ttl_ms: int | None = None
    ) -> t.IngestionKeyCreated:
        """A new ingestion key for one experiment, living ``ttl_ms`` (at most 7 days; the
        server's default, a day unless it was started otherwise, when None); its ``secret``
        is shown only here."""
        return self._run(self._ops.create_ingestion_key(experiment_id, name, ttl_ms))

    def revoke_ingestion_key(self, key_id: int) -> t.IngestionKey:
        """Revoke an ingestion key; requests presenting it are refused from now on."""
        return self._run(self._ops.revoke_ingestion_key(key_id))

    # -- annotations --------------------------------------------------------------------

    def list_annotations(self, experiment_id: int) -> list[t.Annotation]:
        """The annotations of an experiment."""
        return self._run(self._ops.list_annotations(experiment_id))

    def create_annotation(
        self,
        experiment_id: int,
        text: str,
        step: int | None = None,
        timestamp_ns: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> t.Annotation:
        """Annotate an experiment, optionally at a step and a time (``timestamp_ns``)."""
        return self._run(
            self._ops.create_annotation(experiment_id, text, step, timestamp_ns, metadata)
        )
