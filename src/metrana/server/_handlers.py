"""One function per REST route (by the route's name in ``metrana.api._routes.ROUTES``).

Handlers are synchronous: they run in a worker thread and talk to the store, which serialises
its own access. Each returns the route's response type (a ``Page`` for lists).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ..api import _types as t
from ..storage import Principal, SqliteStore
from ._errors import ApiError


class Context(msgspec.Struct):
    """What a handler gets: the store, the caller, and the request's parts."""

    store: SqliteStore
    principal: Principal
    path: dict[str, Any]
    query: dict[str, Any]
    body: Any
    ingestion_key_ttl_ms: int  # of a key minted without ttl_ms


Handler = Callable[[Context], Any]


def auth_status(c: Context) -> t.AuthStatus:
    p = c.principal
    return t.AuthStatus(
        auth=t.AuthKind("api_key" if p.kind == "api" else "ingestion_key"),
        organization=t.Organization(str(p.workspace_id), p.workspace_name),
        workspace_id=p.workspace_id,
        workspace_name=p.workspace_name,
        key_kind="api" if p.kind == "api" else "ingestion",
        key_name=p.key_name,
        experiment_id=p.experiment_id,
    )


def list_folders(c: Context) -> t.Page[t.Folder]:
    return t.Page(c.store.list_folders(c.principal.workspace_id, c.query.get("parent_id")))


def create_folder(c: Context) -> t.Folder:
    return c.store.create_folder(c.principal.workspace_id, c.body)


def get_folder(c: Context) -> t.Folder:
    return c.store.get_folder(c.principal.workspace_id, c.path["folder_id"])


def patch_folder(c: Context) -> t.Folder:
    return c.store.patch_folder(c.principal.workspace_id, c.path["folder_id"], c.body)


def rename_folder(c: Context) -> t.Folder:
    return c.store.rename_folder(c.principal.workspace_id, c.path["folder_id"], c.body.name)


def move_folder(c: Context) -> t.Folder:
    return c.store.move_folder(c.principal.workspace_id, c.path["folder_id"], c.body.parent_id)


def list_experiments(c: Context) -> t.Page[t.Experiment]:
    return t.Page(
        c.store.list_experiments(
            c.principal.workspace_id, c.query.get("folder_id"), c.query.get("status")
        )
    )


def create_experiment(c: Context) -> t.Experiment:
    return c.store.create_experiment(c.principal.workspace_id, c.body)


def get_experiment(c: Context) -> t.Experiment:
    return c.store.get_experiment(c.principal.workspace_id, c.path["experiment_id"])


def update_experiment_status(c: Context) -> t.Experiment:
    return c.store.update_experiment_status(
        c.principal.workspace_id, c.path["experiment_id"], c.body.status
    )


def move_experiment(c: Context) -> t.Experiment:
    return c.store.move_experiment(
        c.principal.workspace_id, c.path["experiment_id"], c.body.folder_id
    )


def run_handshake(c: Context) -> t.RunHandshakeResponse:
    request: t.RunHandshakeRequest = c.body
    workspace = c.principal.workspace_name
    if request.workspace_name is not None and request.workspace_name != workspace:
        raise ApiError(
            403,
            "wrong_workspace",
            f"this API key belongs to workspace {workspace!r}, not {request.workspace_name!r}; "
            f"use a key of {request.workspace_name!r} (metrana keys create --workspace "
            f"{request.workspace_name}) or workspace_name={workspace!r}",
        )
    handle = c.store.open_run(
        c.principal.workspace_name,
        request.project_name,
        request.experiment_name,
        request.run_name,
        request.orchestration_id,
        allow_resume=request.resume_strategy == "Allow",
        metadata=request.metadata,
    )
    resume = [
        t.SeriesLastStep(name, scale, msgspec.json.decode(labels), last)
        for name, scale, labels, last in handle.resume
    ]
    return t.RunHandshakeResponse(
        experiment_id=handle.experiment_id, created=handle.created, resume=resume
    )


def list_metrics(c: Context) -> t.MetricList:
    return c.store.list_metrics(
        c.principal.workspace_id,
        c.path["experiment_id"],
        c.query.get("metric_name"),
        c.query.get("scale"),
        c.query.get("limit"),
    )


def compare_metrics(c: Context) -> t.CompareResponse:
    return c.store.compare_metrics(c.principal.workspace_id, c.body)


def ingest_metrics(c: Context) -> t.IngestResult:
    return c.store.ingest_json(c.principal.workspace_id, c.path["experiment_id"], c.body.metrics)


def list_metric_catalog(c: Context) -> t.Page[t.MetricCatalogEntry]:
    return t.Page(c.store.metric_catalog(c.principal.workspace_id, c.query.get("folder_id")))


def inspect_metric_catalog_values(c: Context) -> t.MetricCatalogValues:
    label_key = c.query.get("label_key")
    if not label_key:
        raise ApiError(400, "invalid_request", "the label_key query parameter is required")
    return c.store.metric_catalog_values(c.principal.workspace_id, c.path["metric_name"], label_key)


def list_ingestion_keys(c: Context) -> t.Page[t.IngestionKey]:
    return t.Page(c.store.list_ingestion_keys(c.principal.workspace_id, c.path["experiment_id"]))


def create_ingestion_key(c: Context) -> t.IngestionKeyCreated:
    asked = c.body.ttl_ms
    ttl_ms = c.ingestion_key_ttl_ms if asked is None or asked is msgspec.UNSET else asked
    return c.store.create_ingestion_key(
        c.principal.workspace_id, c.path["experiment_id"], c.body.name, ttl_ms
    )


def revoke_ingestion_key(c: Context) -> t.IngestionKey:
    return c.store.revoke_ingestion_key(c.principal.workspace_id, c.path["key_id"])


def list_annotations(c: Context) -> t.Page[t.Annotation]:
    return t.Page(c.store.list_annotations(c.principal.workspace_id, c.path["experiment_id"]))


def create_annotation(c: Context) -> t.Annotation:
    return c.store.create_annotation(c.principal.workspace_id, c.path["experiment_id"], c.body)


HANDLERS: dict[str, Handler] = {
    handler.__name__: handler
    for handler in (
        auth_status,
        list_folders,
        create_folder,
        get_folder,
        patch_folder,
        rename_folder,
        move_folder,
        list_experiments,
        create_experiment,
        get_experiment,
        update_experiment_status,
        move_experiment,
        run_handshake,
        list_metrics,
        compare_metrics,
        ingest_metrics,
        list_metric_catalog,
        inspect_metric_catalog_values,
        list_ingestion_keys,
        create_ingestion_key,
        revoke_ingestion_key,
        list_annotations,
        create_annotation,
    )
}
