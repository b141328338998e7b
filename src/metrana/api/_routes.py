"""The REST surface as data: one row per endpoint, read by the server (routing, OpenAPI) and
by the client (requests). Paths are relative to ``/api/v1``."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from . import _types as t

API_PREFIX = "/api/v1"
PROTOBUF_CONTENT_TYPE = "application/x-protobuf"
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024  # the server's limit on a request body (413 above)

# "api": a workspace API key; "ingestion": an API key or the experiment's ingestion key;
# "any": any valid key; "none": no key.
Auth = Literal["api", "ingestion", "any", "none"]


class Route(msgspec.Struct, frozen=True):
    name: str  # the client method
    method: Literal["GET", "POST", "PATCH", "DELETE"]
    path: str  # with {placeholders}
    request: Any  # a msgspec type, or None
    response: Any  # a msgspec type, or None for 204
    auth: Auth = "api"
    query: tuple[str, ...] = ()  # query parameters accepted
    summary: str = ""


ROUTES: tuple[Route, ...] = (
    Route("auth_status", "GET", "/auth/status", None, t.AuthStatus, "any",
          summary="Who the presented key is"),
    # folders
    Route("list_folders", "GET", "/folders", None, t.Page[t.Folder], query=("parent_id",),
          summary="Folders under a parent (top level when parent_id is absent)"),
    Route("create_folder", "POST", "/folders", t.FolderCreate, t.Folder),
    Route("get_folder", "GET", "/folders/{folder_id}", None, t.Folder),
    Route("patch_folder", "PATCH", "/folders/{folder_id}", t.FolderPatch, t.Folder),
    Route("rename_folder", "POST", "/folders/{folder_id}/rename", t.FolderRename, t.Folder),
    Route("move_folder", "POST", "/folders/{folder_id}/move", t.FolderMove, t.Folder),
    # experiments
    Route("list_experiments", "GET", "/experiments", None, t.Page[t.Experiment],
          query=("folder_id", "status")),
    Route("create_experiment", "POST", "/experiments", t.ExperimentCreate, t.Experiment),
    Route("get_experiment", "GET", "/experiments/{experiment_id}", None, t.Experiment),
    Route("update_experiment_status", "POST", "/experiments/{experiment_id}/status",
          t.ExperimentStatusUpdate, t.Experiment),
    Route("move_experiment", "POST", "/experiments/{experiment_id}/move", t.ExperimentMove,
          t.Experiment),
    Route("run_handshake", "POST", "/runs/handshake", t.RunHandshakeRequest,
          t.RunHandshakeResponse, summary="Create or resume a run (used by the dispatcher)"),
    # metrics
    Route("list_metrics", "GET", "/experiments/{experiment_id}/metrics", None, t.MetricList,
          query=("metric_name", "scale", "limit")),
    Route("compare_metrics", "POST", "/metrics/compare", t.CompareRequest, t.CompareResponse),
    Route("ingest_metrics", "POST", "/experiments/{experiment_id}/metrics", t.IngestRequest,
          t.IngestResult, "ingestion"),
    Route("list_metric_catalog", "GET", "/metrics/catalog", None, t.Page[t.MetricCatalogEntry],
          query=("folder_id",)),
    Route("inspect_metric_catalog_values", "GET", "/metrics/catalog/{metric_name}/values",
          None, t.MetricCatalogValues, query=("label_key",)),
    # ingestion keys
    Route("list_ingestion_keys", "GET", "/experiments/{experiment_id}/ingestion-keys", None,
          t.Page[t.IngestionKey]),
    Route("create_ingestion_key", "POST", "/experiments/{experiment_id}/ingestion-keys",
          t.IngestionKeyCreate, t.IngestionKeyCreated),
    Route("revoke_ingestion_key", "DELETE", "/ingestion-keys/{key_id}", None, t.IngestionKey),
    # annotations
    Route("list_annotations", "GET", "/experiments/{experiment_id}/annotations", None,
          t.Page[t.Annotation]),
    Route("create_annotation", "POST", "/experiments/{experiment_id}/annotations",
          t.AnnotationCreate, t.Annotation, "ingestion"),
)  # fmt: skip

# Protobuf ingestion (body: metrana.v1.IngestBatch; answer: metrana.v1.IngestResponse),
# authenticated with an ingestion key.
INGEST_PATH = "/ingest"

ROUTES_BY_NAME = {route.name: route for route in ROUTES}
