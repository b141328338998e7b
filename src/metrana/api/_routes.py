"""The REST surface as data: one row per endpoint, read by the server (routing, OpenAPI) and
by the client (requests). Paths are relative to ``/api/v1``."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from . import _chart_types as ct
from . import _types as t

API_PREFIX = "/api/v1"
PROTOBUF_CONTENT_TYPE = "application/x-protobuf"
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024  # the server's limit on a request body (413 above)

# "api": an organization API key (or a dashboard session, see docs/dashboard.md);
# "ingestion": an API key or the experiment's ingestion key; "any": any valid key.
Auth = Literal["api", "ingestion", "any"]


class Route(msgspec.Struct, frozen=True):
    name: str  # the client method
    method: Literal["GET", "POST", "PATCH", "DELETE"]
    path: str  # with {placeholders}
    request: Any  # a msgspec type, or None
    response: Any  # a msgspec type (the ``data`` of the envelope)
    auth: Auth = "api"
    query: Any = None  # a msgspec struct of the query parameters, or None for none
    summary: str = ""
    idempotent: bool = True  # POST/PATCH honour Idempotency-Key (not create_ingestion_key)

    @property
    def query_names(self) -> tuple[str, ...]:
        """The query parameters the route takes, as sent."""
        if self.query is None:
            return ()
        return tuple(f.encode_name for f in msgspec.structs.fields(self.query))


EXPERIMENT = "/experiments/{experiment_id}"

ROUTES: tuple[Route, ...] = (
    Route("auth_status", "GET", "/auth/status", None, t.AuthStatusResponse, "any",
          summary="Who the presented key is"),
    # folders
    Route("list_folders", "GET", "/folders", None, t.FoldersResponse, query=t.ListFoldersQuery,
          summary="Every folder of the organization, or the one at a path"),
    Route("create_folder", "POST", "/folders", t.FolderCreate, t.FolderResponse),
    Route("get_folder", "GET", "/folders/{folder_id}", None, t.FolderContentsResponse,
          summary="A folder with its sub-folders and experiments"),
    Route("patch_folder", "PATCH", "/folders/{folder_id}", t.FolderPatch, t.FolderResponse,
          summary="Rename and/or move a folder"),
    # experiments
    Route("list_experiments", "GET", "/experiments", None, t.ExperimentsResponse,
          query=t.ListExperimentsQuery),
    Route("create_experiment", "POST", "/experiments", t.ExperimentCreate, t.ExperimentResponse),
    Route("get_experiment", "GET", EXPERIMENT, None, t.ExperimentResponse),
    Route("update_experiment_status", "POST", EXPERIMENT, t.ExperimentStatusUpdate,
          t.ExperimentResponse),
    Route("move_experiment", "PATCH", EXPERIMENT, t.ExperimentMove, t.ExperimentResponse),
    # metrics
    Route("list_metrics", "GET", EXPERIMENT + "/metrics", None, t.RowsResponse,
          query=t.ListMetricsQuery),
    Route("compare_metrics", "GET", "/metrics", None, t.RowsResponse, query=t.CompareQuery,
          summary="The events of several series (of one or several experiments)"),
    Route("ingest_metrics", "POST", EXPERIMENT + "/ingest", t.IngestCreate, t.IngestResponse,
          "ingestion", query=t.IngestQuery),
    Route("list_metric_catalog", "GET", EXPERIMENT + "/catalog", None, t.MetricCatalogResponse,
          query=t.CatalogQuery),
    Route("inspect_metric_catalog_values", "GET", EXPERIMENT + "/catalog/{metric_name}", None,
          t.MetricCatalogValuesResponse, query=t.CatalogValuesQuery),
    # ingestion keys
    Route("list_ingestion_keys", "GET", EXPERIMENT + "/ingestion-keys", None,
          t.IngestionKeysResponse),
    Route("create_ingestion_key", "POST", EXPERIMENT + "/ingestion-keys",
          t.IngestionKeyCreate, t.IngestionKeyCreateResponse, idempotent=False),
    Route("revoke_ingestion_key", "DELETE", EXPERIMENT + "/ingestion-keys/{key_id}", None,
          t.IngestionKeyResponse),
    # annotations
    Route("list_annotations", "GET", EXPERIMENT + "/annotations", None, t.AnnotationsResponse,
          query=t.ListAnnotationsQuery),
    Route("create_annotation", "POST", EXPERIMENT + "/annotations", t.AnnotationCreate,
          t.ExperimentAnnotationResponse, "ingestion"),
    # Metrana's: the dispatcher's handshake
    Route("run_handshake", "POST", "/runs/handshake", t.RunHandshakeRequest,
          t.RunHandshakeResponse, summary="Create or resume a run (used by the dispatcher)"),
    # Metrana's: the dashboard (docs/dashboard.md)
    Route("chart_series", "GET", EXPERIMENT + "/charts", None, ct.ChartSeriesResponse,
          query=ct.ChartQuery,
          summary="An experiment's series downsampled for a chart (min/max per bucket)"),
    Route("experiment_summaries", "GET", "/experiment-summaries", None,
          ct.ExperimentSummariesResponse, query=ct.SummaryQuery,
          summary="Experiments' series and point counts and their metrics' last values"),
    Route("create_login_token", "POST", "/auth/login-tokens", ct.LoginTokenCreate,
          ct.LoginTokenResponse, idempotent=False,
          summary="A one-time dashboard login URL (an API key only)"),
)  # fmt: skip

# Protobuf ingestion (body: metrana.v1.IngestBatch; answer: metrana.v1.IngestResponse),
# authenticated with an ingestion key.
INGEST_PATH = "/ingest"

ROUTES_BY_NAME = {route.name: route for route in ROUTES}
