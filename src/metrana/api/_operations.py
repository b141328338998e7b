"""Every REST call, written once as an :data:`~._transport.Op` and driven by both clients.

Besides building requests, this is where a client keeps its little state: the ingestion key
it minted per experiment (in memory only, as the Syvain client does) and the server's pacing
hint for ingestion.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

import msgspec

from .._retry import Pacer, RetryPolicy
from . import _chart_types as ct
from . import _inputs as inputs
from . import _types as t
from ._errors import MetricsApiRequestError
from ._transport import Exchange, Op, Sleep, encode_body, new_idempotency_key

R = TypeVar("R")
Unset = msgspec.UnsetType


class Operations(Exchange):
    """The calls of the REST surface, one generator each, named as the client methods (whose
    docstrings say what they do)."""

    def __init__(
        self,
        host: str,
        api_key: str,
        timeout: float,
        ingest_timeout: float,
        retry: RetryPolicy,
        ingestion_key_name: str,
    ) -> None:
        super().__init__(host, api_key, timeout, ingest_timeout, retry)
        self.ingestion_key_name = ingestion_key_name
        # experiment id -> (token, expires_at_ms) of the ingestion key this client minted
        self._ingestion_credentials: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self._pacer = Pacer()  # the server's pacing_seconds, for every ingest of this client

    # -- auth, folders ------------------------------------------------------------------

    def auth_status(self) -> Op[t.AuthStatusResponse]:
        return self.call("auth_status", t.AuthStatusResponse)

    def list_folders(self, path: str | None) -> Op[t.FoldersResponse]:
        return self.call("list_folders", t.FoldersResponse, query=t.ListFoldersQuery(path=path))

    def create_folder(self, name: str, parent_id: str | None) -> Op[t.FolderResponse]:
        fields = {"name": name, "parent_id": parent_id}
        body = inputs.checked(t.FolderCreate, "create_folder request", fields)
        return self.call("create_folder", t.FolderResponse, body=body)

    def get_folder(self, folder_id: str) -> Op[t.FolderContentsResponse]:
        return self.call("get_folder", t.FolderContentsResponse, path={"folder_id": folder_id})

    def patch_folder(
        self, folder_id: str, name: str | None, parent_id: str | Unset | None
    ) -> Op[t.FolderResponse]:
        body = inputs.folder_patch(name, parent_id)
        return self.call("patch_folder", t.FolderResponse, path={"folder_id": folder_id}, body=body)

    # -- experiments --------------------------------------------------------------------

    def list_experiments(
        self,
        status: str | None,
        slug: str | None,
        search: str | None,
        from_ms: int | None,
        to_ms: int | None,
        limit: int | None,
    ) -> Op[t.ExperimentsResponse]:
        query = t.ListExperimentsQuery(
            status=cast(Any, status),  # sent as given: the server judges it, as in Syvain's
            slug=slug,
            search=search,
            from_ms=from_ms,
            to_ms=to_ms,
            limit=limit,
        )
        return self.call("list_experiments", t.ExperimentsResponse, query=query)

    def create_experiment(
        self,
        slug: str,
        description: str,
        metadata: Mapping[str, Any] | None,
        folder_id: str | Unset | None,
    ) -> Op[t.ExperimentResponse]:
        body = inputs.experiment_create(slug, description, metadata, folder_id)
        return self.call("create_experiment", t.ExperimentResponse, body=body)

    def get_experiment(self, experiment_id: str) -> Op[t.ExperimentResponse]:
        path = {"experiment_id": experiment_id}
        return self.call("get_experiment", t.ExperimentResponse, path=path)

    def update_experiment_status(
        self,
        experiment_id: str,
        status: str,
        error: t.ExperimentStatusError | Mapping[str, Any] | None,
        timestamp_ms: int | None,
    ) -> Op[t.ExperimentResponse]:
        body = inputs.status_update(status, error, timestamp_ms)
        path = {"experiment_id": experiment_id}
        return self.call("update_experiment_status", t.ExperimentResponse, path=path, body=body)

    def move_experiment(
        self, experiment_id: str, folder_id: str | None
    ) -> Op[t.ExperimentResponse]:
        body = inputs.checked(t.ExperimentMove, "move_experiment request", {"folder_id": folder_id})
        path = {"experiment_id": experiment_id}
        return self.call("move_experiment", t.ExperimentResponse, path=path, body=body)

    def run_handshake(self, request: t.RunHandshakeRequest) -> Op[t.RunHandshakeResponse]:
        return self.call("run_handshake", t.RunHandshakeResponse, body=request)

    # -- metrics ------------------------------------------------------------------------

    def list_metrics(
        self,
        experiment_id: str,
        *,
        metric_name: str | None,
        metadata_key: str | None,
        metadata_value: str | None,
        metadata_value_json: str | None,
        filters: t.RowFilters,
    ) -> Op[t.RowsResponse]:
        query = t.ListMetricsQuery(
            metric_name=metric_name,
            metadata_key=metadata_key,
            metadata_value=metadata_value,
            metadata_value_json=metadata_value_json,
            **msgspec.structs.asdict(filters),
        )
        path = {"experiment_id": experiment_id}
        answer = yield from self.call("list_metrics", t.RowsResponse, path=path, query=query)
        return _with_float_values(answer)

    def compare_metrics(
        self,
        series: Sequence[t.ComparisonMetricSeries | Mapping[str, Any]],
        filters: t.RowFilters,
    ) -> Op[t.RowsResponse]:
        query = t.CompareQuery(
            series=inputs.comparison_series(series), **msgspec.structs.asdict(filters)
        )
        answer = yield from self.call("compare_metrics", t.RowsResponse, query=query)
        return _with_float_values(answer)

    def ingest_metrics(
        self,
        experiment_id: str,
        data: Sequence[t.MetricCreateInput | Mapping[str, Any]],
        sync: bool | None,
    ) -> Op[t.IngestResponse]:
        """With the experiment's ingestion key (see :meth:`_with_ingestion_key`), after the
        pause the server last asked for (Metrana's ``pacing_seconds``)."""
        body = inputs.ingest_body(data)
        if (wait := self._pacer.remaining()) > 0:
            yield Sleep(wait)
        result = yield from self._with_ingestion_key(
            "ingest_metrics",
            t.IngestResponse,
            experiment_id,
            body,
            t.IngestQuery(sync=sync),
            self.ingest_timeout,
        )
        self._pacer.hint(result.pacing_seconds)
        return result

    def list_metric_catalog(
        self, experiment_id: str, limit: int | None
    ) -> Op[t.MetricCatalogResponse]:
        return self.call(
            "list_metric_catalog",
            t.MetricCatalogResponse,
            path={"experiment_id": experiment_id},
            query=t.CatalogQuery(limit=limit),
        )

    def inspect_metric_catalog_values(
        self,
        experiment_id: str,
        metric: str,
        key: str | Sequence[str] | None,
        limit: int | None,
    ) -> Op[t.MetricCatalogValuesResponse]:
        keys = [] if key is None else [key] if isinstance(key, str) else list(key)
        return self.call(
            "inspect_metric_catalog_values",
            t.MetricCatalogValuesResponse,
            path={"experiment_id": experiment_id, "metric_name": metric},
            query=t.CatalogValuesQuery(key=keys, limit=limit),
        )

    # -- ingestion keys -----------------------------------------------------------------

    def list_ingestion_keys(self, experiment_id: str) -> Op[t.IngestionKeysResponse]:
        path = {"experiment_id": experiment_id}
        return self.call("list_ingestion_keys", t.IngestionKeysResponse, path=path)

    def create_ingestion_key(
        self, experiment_id: str, name: str, ttl_ms: int | None
    ) -> Op[t.IngestionKeyCreateResponse]:
        body = inputs.ingestion_key_create(name, ttl_ms)
        path = {"experiment_id": experiment_id}
        return self.call("create_ingestion_key", t.IngestionKeyCreateResponse, path=path, body=body)

    def revoke_ingestion_key(self, experiment_id: str, key_id: str) -> Op[t.IngestionKeyResponse]:
        path = {"experiment_id": experiment_id, "key_id": key_id}
        return self.call("revoke_ingestion_key", t.IngestionKeyResponse, path=path)

    def _ingestion_token(self, experiment_id: str, refused: str | None = None) -> Op[str]:
        """The cached ingestion token of ``experiment_id`` while it has more than 5 minutes to
        live, else a new key's (minted with the API key, the server's default lifetime). A
        ``refused`` token is not given again: a new key is minted, unless another call of this
        client has already replaced it."""
        with self._lock:
            cached = self._ingestion_credentials.get(experiment_id)
        now_ms = time.time() * 1000
        if cached and cached[0] != refused and cached[1] - t.KEY_RENEWAL_MARGIN_MS > now_ms:
            return cached[0]
        created = yield from self.create_ingestion_key(experiment_id, self.ingestion_key_name, None)
        with self._lock:
            self._ingestion_credentials[experiment_id] = (created.token, created.key.expires_at_ms)
        return created.token

    def _with_ingestion_key(
        self,
        route: str,
        response: type[R],
        experiment_id: str,
        body: msgspec.Struct,
        query: msgspec.Struct | None,
        timeout: float,
    ) -> Op[R]:
        """Call ``route`` with the experiment's ingestion token; on a 401 or 403 (revoked,
        expired) mint another and send again, once, with the same ``Idempotency-Key``. Old
        keys are never revoked, as in the Syvain client (they expire)."""
        content = msgspec.Raw(encode_body(route, body))  # refused before a key is minted
        idempotency_key = new_idempotency_key()
        refused: str | None = None
        for last_try in (False, True):
            token = yield from self._ingestion_token(experiment_id, refused)
            try:
                return (
                    yield from self.call(
                        route,
                        response,
                        path={"experiment_id": experiment_id},
                        query=query,
                        body=content,
                        token=token,
                        timeout=timeout,
                        idempotency_key=idempotency_key,
                    )
                )
            except MetricsApiRequestError as error:
                if error.status_code not in (401, 403) or last_try:
                    raise
                refused = token
        raise AssertionError("unreachable")  # pragma: no cover

    def forget_ingestion_credential(self, experiment_id: str) -> None:
        """Drop the cached ingestion token of ``experiment_id``; nothing is sent."""
        with self._lock:
            self._ingestion_credentials.pop(experiment_id, None)

    # -- annotations --------------------------------------------------------------------

    def list_annotations(
        self, experiment_id: str, from_ms: int | None, to_ms: int | None, limit: int | None
    ) -> Op[t.AnnotationsResponse]:
        return self.call(
            "list_annotations",
            t.AnnotationsResponse,
            path={"experiment_id": experiment_id},
            query=t.ListAnnotationsQuery(from_ms=from_ms, to_ms=to_ms, limit=limit),
        )

    def create_annotation(
        self, experiment_id: str, annotation: str, metadata: Mapping[str, Any] | None
    ) -> Op[t.ExperimentAnnotationResponse]:
        body = inputs.annotation_create(annotation, metadata)
        return self._with_ingestion_key(
            "create_annotation",
            t.ExperimentAnnotationResponse,
            experiment_id,
            body,
            None,
            self.timeout,
        )

    # -- the dashboard's ------------------------------------------------------------------

    def chart_series(
        self,
        experiment_id: str,
        metric_names: Sequence[str],
        width: int | None,
        from_step: int | None,
        to_step: int | None,
    ) -> Op[ct.ChartSeriesResponse]:
        query = inputs.checked(
            ct.ChartQuery,
            "chart_series query",
            {"metric_name": list(metric_names), "width": width, "from_step": from_step,
             "to_step": to_step},
        )  # fmt: skip
        path = {"experiment_id": experiment_id}
        return self.call("chart_series", ct.ChartSeriesResponse, path=path, query=query)

    def experiment_summaries(
        self, experiment_ids: Sequence[str], metric_names: Sequence[str]
    ) -> Op[ct.ExperimentSummariesResponse]:
        query = inputs.checked(
            ct.SummaryQuery,
            "experiment_summaries query",
            {"experiment_id": list(experiment_ids), "metric_name": list(metric_names)},
        )
        return self.call("experiment_summaries", ct.ExperimentSummariesResponse, query=query)

    def create_login_token(self, ttl_ms: int | None) -> Op[ct.LoginTokenResponse]:
        body = inputs.checked(ct.LoginTokenCreate, "create_login_token request", {"ttl_ms": ttl_ms})
        return self.call("create_login_token", ct.LoginTokenResponse, body=body)


def row_filters(
    *,
    step: int | None = None,
    from_step: int | None,
    to_step: int | None,
    from_time: int | None,
    to_time: int | None,
    sort_by: Sequence[str] | None,
    sort_direction: str | None,
    limit: int | None,
    include_experiment_meta_as_of: bool | None,
) -> t.RowFilters:
    """What ``list_metrics`` and ``compare_metrics`` share, as sent (``sort_by`` joined by
    commas; every value as given: the server judges them)."""
    return t.RowFilters(
        step=step,
        from_step=from_step,
        to_step=to_step,
        from_time=from_time,
        to_time=to_time,
        sort_by=None if sort_by is None else ",".join(sort_by),
        sort_direction=cast(Any, sort_direction),
        limit=limit,
        include_experiment_meta_as_of=include_experiment_meta_as_of,
    )


def _with_float_values(answer: t.RowsResponse) -> t.RowsResponse:
    """Rows whose values are floats: JSON carries NaN and infinities as ``"nan"``, ``"inf"``
    and ``"-inf"``, which the Syvain client reads as floats too."""
    for row in answer.rows:
        if isinstance(row.metric_value, str):
            row.metric_value = t.decode_value(row.metric_value)
    return answer
