"""Every REST call, written once as an :data:`~._transport.Op` and driven by both clients.

Besides building requests, this is where the client keeps its little state: the ingestion key
it minted per experiment (in memory only) and the server's pacing hint for ingestion.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

import msgspec

from .._config import api_host, retry_policy
from .._errors import MetranaConfigError, MetranaInvalidMetricError
from .._retry import Pacer, RetryPolicy
from . import _types as t
from ._auth import load_credentials
from ._errors import MetricsApiAuthError, MetricsApiRequestError
from ._transport import Exchange, Op, Sleep

R = TypeVar("R")

CLIENT_KEY_NAME = "client"
LOCAL_KEY = "local"


def ingest_metric(metric: t.IngestMetric | Mapping[str, Any]) -> t.IngestMetric:
    """``metric`` as an :class:`IngestMetric`: a mapping gets a fresh ``client_event_id`` when it
    has none, and a NaN or infinite value travels as ``"nan"``/``"inf"``/``"-inf"``."""
    if isinstance(metric, t.IngestMetric):
        if isinstance(metric.value, float) and not math.isfinite(metric.value):
            return msgspec.structs.replace(metric, value=t.encode_value(metric.value))
        return metric
    if not isinstance(metric, Mapping):
        raise MetranaInvalidMetricError(
            f"ingest_metrics takes IngestMetric objects or mappings, not {type(metric).__name__}"
        )
    fields = dict(metric)
    unknown = set(fields) - set(t.IngestMetric.__struct_fields__)
    if unknown:
        raise MetranaInvalidMetricError(
            f"invalid metric {metric!r}: unknown field(s) {sorted(unknown, key=str)}; "
            f"accepted: {', '.join(t.IngestMetric.__struct_fields__)}"
        )
    if not fields.get("client_event_id"):
        fields["client_event_id"] = uuid.uuid4().hex
    value = fields.get("value")
    if isinstance(value, float):
        fields["value"] = t.encode_value(value)
    try:
        return msgspec.convert(fields, t.IngestMetric)
    except msgspec.ValidationError as error:
        raise MetranaInvalidMetricError(f"invalid metric {metric!r}: {error}") from None


class Operations(Exchange):
    """The calls of the REST surface, one generator each, named as the client methods."""

    def __init__(
        self, host: str, api_key: str, timeout: float, ingest_timeout: float, retry: RetryPolicy
    ) -> None:
        super().__init__(host, api_key, timeout, ingest_timeout, retry)
        # experiment id -> (secret, expires_at_ms) of the ingestion key this client minted
        self._ingestion_secrets: dict[int, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self._pacer = Pacer()  # the server's pacing_seconds, for every ingest of this client

    # -- auth ---------------------------------------------------------------------------

    def auth_status(self) -> Op[t.AuthStatus]:
        return self.call("auth_status", t.AuthStatus)

    # -- folders ------------------------------------------------------------------------

    def list_folders(self, parent_id: int | None) -> Op[list[t.Folder]]:
        page = yield from self.call(
            "list_folders", t.Page[t.Folder], query={"parent_id": parent_id}
        )
        return page.items

    def create_folder(self, name: str, parent_id: int | None, description: str) -> Op[t.Folder]:
        body = t.FolderCreate(name=name, parent_id=parent_id, description=description)
        return self.call("create_folder", t.Folder, body=body)

    def get_folder(self, folder_id: int) -> Op[t.Folder]:
        return self.call("get_folder", t.Folder, path={"folder_id": folder_id})

    def patch_folder(self, folder_id: int, description: str | None) -> Op[t.Folder]:
        body = t.FolderPatch(description=description)
        return self.call("patch_folder", t.Folder, path={"folder_id": folder_id}, body=body)

    def rename_folder(self, folder_id: int, name: str) -> Op[t.Folder]:
        body = t.FolderRename(name=name)
        return self.call("rename_folder", t.Folder, path={"folder_id": folder_id}, body=body)

    def move_folder(self, folder_id: int, parent_id: int | None) -> Op[t.Folder]:
        body = t.FolderMove(parent_id=parent_id)
        return self.call("move_folder", t.Folder, path={"folder_id": folder_id}, body=body)

    # -- experiments --------------------------------------------------------------------

    def list_experiments(self, folder_id: int | None, status: str | None) -> Op[list[t.Experiment]]:
        page = yield from self.call(
            "list_experiments",
            t.Page[t.Experiment],
            query={"folder_id": folder_id, "status": status},
        )
        return page.items

    def create_experiment(
        self,
        folder_id: int,
        name: str,
        description: str,
        metadata: Mapping[str, Any] | None,
        status: str,
    ) -> Op[t.Experiment]:
        body = t.ExperimentCreate(
            folder_id=folder_id,
            name=name,
            description=description,
            metadata=dict(metadata or {}),
            status=cast(t.ExperimentStatus, status),
        )
        return self.call("create_experiment", t.Experiment, body=body)

    def get_experiment(self, experiment_id: int) -> Op[t.Experiment]:
        return self.call("get_experiment", t.Experiment, path={"experiment_id": experiment_id})

    def update_experiment_status(self, experiment_id: int, status: str) -> Op[t.Experiment]:
        body = t.ExperimentStatusUpdate(status=cast(t.ExperimentStatus, status))
        return self.call(
            "update_experiment_status",
            t.Experiment,
            path={"experiment_id": experiment_id},
            body=body,
        )

    def move_experiment(self, experiment_id: int, folder_id: int) -> Op[t.Experiment]:
        body = t.ExperimentMove(folder_id=folder_id)
        return self.call(
            "move_experiment", t.Experiment, path={"experiment_id": experiment_id}, body=body
        )

    def run_handshake(self, request: t.RunHandshakeRequest) -> Op[t.RunHandshakeResponse]:
        return self.call("run_handshake", t.RunHandshakeResponse, body=request)

    # -- metrics ------------------------------------------------------------------------

    def list_metrics(
        self, experiment_id: int, metric_name: str | None, scale: str | None, limit: int | None
    ) -> Op[t.MetricList]:
        return self.call(
            "list_metrics",
            t.MetricList,
            path={"experiment_id": experiment_id},
            query={"metric_name": metric_name, "scale": scale, "limit": limit},
        )

    def compare_metrics(
        self, series: Sequence[t.ComparisonMetricSeries], limit: int
    ) -> Op[t.CompareResponse]:
        body = t.CompareRequest(series=list(series), limit=limit)
        return self.call("compare_metrics", t.CompareResponse, body=body)

    def ingest_metrics(
        self,
        experiment_id: int,
        metrics: Sequence[t.IngestMetric | Mapping[str, Any]],
        sync: bool,
    ) -> Op[t.IngestResult]:
        """With the experiment's ingestion key, minted on first use; on a 401 the key is
        forgotten, a new one minted and the batch sent again, once."""
        body = t.IngestRequest(metrics=[ingest_metric(m) for m in metrics], sync=sync)
        if (wait := self._pacer.remaining()) > 0:
            yield Sleep(wait)
        result = yield from self._with_ingestion_key(
            "ingest_metrics", t.IngestResult, experiment_id, body, self.ingest_timeout
        )
        self._pacer.hint(result.pacing_seconds)
        return result

    def _with_ingestion_key(
        self,
        route: str,
        response: type[R],
        experiment_id: int,
        body: msgspec.Struct,
        timeout: float | None = None,
    ) -> Op[R]:
        """Call ``route`` with the experiment's ingestion key, minted on first use and again
        when it is within 5 minutes of expiring (as the Syvain client does); on a 401 or 403
        the key is forgotten, a new one minted and the request sent again, once."""
        reminted = False
        while True:
            cached = self._ingestion_secrets.get(experiment_id)
            if cached is None or cached[1] - t.KEY_RENEWAL_MARGIN_MS <= time.time() * 1000:
                created = yield from self.create_ingestion_key(experiment_id, CLIENT_KEY_NAME)
                cached = (created.secret, created.key.expires_at_ms)
                with self._lock:
                    self._ingestion_secrets[experiment_id] = cached
            secret = cached[0]
            try:
                return (
                    yield from self.call(
                        route,
                        response,
                        path={"experiment_id": experiment_id},
                        body=body,
                        token=secret,
                        timeout=timeout,
                    )
                )
            except MetricsApiRequestError as error:
                if error.status_code not in (401, 403) or reminted:
                    raise
                reminted = True  # revoked or expired: mint another, once
                self.forget_ingestion_credential(experiment_id, secret)

    def forget_ingestion_credential(self, experiment_id: int, secret: str | None = None) -> None:
        """Drop the cached ingestion key of ``experiment_id`` (only if it is still ``secret``,
        when given, so that a key another thread just minted survives)."""
        with self._lock:
            cached = self._ingestion_secrets.get(experiment_id)
            if secret is None or (cached is not None and cached[0] == secret):
                self._ingestion_secrets.pop(experiment_id, None)

    def list_metric_catalog(self, folder_id: int | None) -> Op[list[t.MetricCatalogEntry]]:
        page = yield from self.call(
            "list_metric_catalog", t.Page[t.MetricCatalogEntry], query={"folder_id": folder_id}
        )
        return page.items

    def inspect_metric_catalog_values(
        self, metric_name: str, label_key: str
    ) -> Op[t.MetricCatalogValues]:
        return self.call(
            "inspect_metric_catalog_values",
            t.MetricCatalogValues,
            path={"metric_name": metric_name},
            query={"label_key": label_key},
        )

    # -- ingestion keys -----------------------------------------------------------------

    def list_ingestion_keys(self, experiment_id: int) -> Op[list[t.IngestionKey]]:
        page = yield from self.call(
            "list_ingestion_keys", t.Page[t.IngestionKey], path={"experiment_id": experiment_id}
        )
        return page.items

    def create_ingestion_key(
        self, experiment_id: int, name: str, ttl_ms: int | None = None
    ) -> Op[t.IngestionKeyCreated]:
        if ttl_ms is not None and (problem := t.ttl_problem(ttl_ms)):
            raise MetranaConfigError(f"{problem}; or None for the server's default")
        return self.call(
            "create_ingestion_key",
            t.IngestionKeyCreated,
            path={"experiment_id": experiment_id},
            body=t.IngestionKeyCreate(
                name=name, ttl_ms=msgspec.UNSET if ttl_ms is None else ttl_ms
            ),
        )

    def revoke_ingestion_key(self, key_id: int) -> Op[t.IngestionKey]:
        return self.call("revoke_ingestion_key", t.IngestionKey, path={"key_id": key_id})

    # -- annotations --------------------------------------------------------------------

    def list_annotations(self, experiment_id: int) -> Op[list[t.Annotation]]:
        page = yield from self.call(
            "list_annotations", t.Page[t.Annotation], path={"experiment_id": experiment_id}
        )
        return page.items

    def create_annotation(
        self,
        experiment_id: int,
        text: str,
        step: int | None,
        timestamp_ns: int | None,
        metadata: Mapping[str, Any] | None,
    ) -> Op[t.Annotation]:
        body = t.AnnotationCreate(
            text=text, step=step, timestamp_ns=timestamp_ns, metadata=dict(metadata or {})
        )
        return self._with_ingestion_key("create_annotation", t.Annotation, experiment_id, body)


def open_operations(
    api_key: str,
    host: str | None,
    timeout: float,
    ingest_timeout: float,
    retry: RetryPolicy | None,
) -> Operations:
    """Resolve a client's settings: ``api_key="local"`` reads the saved credentials; the host is
    the argument, else the saved one, else ``METRANA_HOST``, else the local default."""
    saved_host: str | None = None
    if api_key == LOCAL_KEY:
        credentials = load_credentials()
        api_key, saved_host = credentials.api_key, credentials.host
    if not isinstance(api_key, str) or not api_key.strip():
        raise MetricsApiAuthError(
            "no API key: pass one, or pass 'local' after `metrana login --host URL --api-key KEY`"
        )
    for setting, value in (("timeout", timeout), ("ingest_timeout", ingest_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise MetranaConfigError(
                f"invalid {setting} {value!r}; accepted values: a number of seconds > 0"
            )
    try:
        resolved_host = api_host(host, saved_host)
    except MetranaConfigError as error:
        raise MetricsApiAuthError(str(error)) from None
    return Operations(
        host=resolved_host,
        api_key=api_key.strip(),
        timeout=float(timeout),
        ingest_timeout=float(ingest_timeout),
        retry=retry_policy() if retry is None else retry,
    )
