"""One function per REST route (by the route's name in ``metrana.api._routes.ROUTES``).

Handlers are synchronous: they run in a worker thread and talk to the store, which serialises
its own access. Each returns the route's response type (the ``data`` of the envelope). Ids
arrive as the API's strings and are read here; an experiment's ``url`` is made absolute with
the origin the request was sent to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ..api import _chart_types as ct
from ..api import _types as t
from ..storage import InvalidRequestError, Principal, Store
from ..storage._db import parse_id
from ._downsample import downsample
from ._errors import ApiError
from ._sessions import LOGIN_TOKEN_TTL_MS, Sessions, login_url


class Context(msgspec.Struct):
    """What a handler gets: the store, the caller, and the request's parts."""

    store: Store
    principal: Principal
    path: dict[str, Any]
    query: Any  # the route's query struct, or None
    body: Any
    origin: str  # "http://host:port", to make experiment URLs absolute
    ingestion_key_ttl_ms: int  # of a key minted without ttl_ms
    sessions: Sessions  # the dashboard's login tokens and sessions

    @property
    def org(self) -> int:
        return self.principal.org_id

    @property
    def experiment_id(self) -> int:
        return parse_id("experiment", self.path["experiment_id"])

    @property
    def folder_id(self) -> int:
        return parse_id("folder", self.path["folder_id"])

    def absolute(self, experiment: t.Experiment) -> t.Experiment:
        """``experiment`` with the full address of its page."""
        return msgspec.structs.replace(experiment, url=self.origin + experiment.url)


Handler = Callable[[Context], Any]


def auth_status(c: Context) -> t.AuthStatusResponse:
    p = c.principal
    ingestion = p.kind == "ingestion"
    return t.AuthStatusResponse(
        auth=t.AuthIdentity(
            "ingestion_key" if ingestion else "session" if p.kind == "session" else "api_key"
        ),
        organization=t.Organization(str(p.org_id), p.org_name),
        key_name=p.key_name,
        experiment_id=str(p.experiment_id) if ingestion else None,
    )


def list_folders(c: Context) -> t.FoldersResponse:
    return t.FoldersResponse(c.store.list_folders(c.org, c.query.path))


def create_folder(c: Context) -> t.FolderResponse:
    return t.FolderResponse(c.store.create_folder(c.org, c.body))


def get_folder(c: Context) -> t.FolderContentsResponse:
    contents = c.store.get_folder(c.org, c.folder_id)
    contents.experiments = [c.absolute(e) for e in contents.experiments]
    return contents


def patch_folder(c: Context) -> t.FolderResponse:
    return t.FolderResponse(c.store.patch_folder(c.org, c.folder_id, c.body))


def list_experiments(c: Context) -> t.ExperimentsResponse:
    found = c.store.list_experiments(c.org, c.query)
    return t.ExperimentsResponse([c.absolute(e) for e in found])


def create_experiment(c: Context) -> t.ExperimentResponse:
    return t.ExperimentResponse(c.absolute(c.store.create_experiment(c.org, c.body)))


def get_experiment(c: Context) -> t.ExperimentResponse:
    return t.ExperimentResponse(c.absolute(c.store.get_experiment(c.org, c.experiment_id)))


def update_experiment_status(c: Context) -> t.ExperimentResponse:
    updated = c.store.update_experiment_status(c.org, c.experiment_id, c.body)
    return t.ExperimentResponse(c.absolute(updated))


def move_experiment(c: Context) -> t.ExperimentResponse:
    moved = c.store.move_experiment(c.org, c.experiment_id, c.body.folder_id)
    return t.ExperimentResponse(c.absolute(moved))


def run_handshake(c: Context) -> t.RunHandshakeResponse:
    request: t.RunHandshakeRequest = c.body
    handle = c.store.open_run(
        request.workspace_name,
        request.project_name,
        request.experiment_name,
        request.run_name,
        request.orchestration_id,
        allow_resume=request.resume_strategy == "Allow",
        metadata=request.metadata,
        org_id=c.org,
    )
    resume = [
        t.SeriesLastStep(name, scale, labels, last)
        for name, scale, text, last in handle.resume
        if isinstance(labels := msgspec.json.decode(text), dict)
        and all(isinstance(v, str) for v in labels.values())  # log()'s series only
    ]
    experiment = c.absolute(c.store.get_experiment(c.org, handle.experiment_id))
    return t.RunHandshakeResponse(experiment=experiment, created=handle.created, resume=resume)


def list_metrics(c: Context) -> t.RowsResponse:
    return c.store.list_metrics(c.org, c.experiment_id, c.query)


def compare_metrics(c: Context) -> t.RowsResponse:
    return c.store.compare_metrics(c.org, c.query)


def ingest_metrics(c: Context) -> t.IngestResponse:
    return c.store.ingest_json(c.org, c.experiment_id, c.body.data)


def list_metric_catalog(c: Context) -> t.MetricCatalogResponse:
    return c.store.metric_catalog(c.org, c.experiment_id, c.query.limit)


def inspect_metric_catalog_values(c: Context) -> t.MetricCatalogValuesResponse:
    return c.store.metric_catalog_values(
        c.org, c.experiment_id, c.path["metric_name"], c.query.key, c.query.limit
    )


def list_ingestion_keys(c: Context) -> t.IngestionKeysResponse:
    return t.IngestionKeysResponse(c.store.list_ingestion_keys(c.org, c.experiment_id))


def create_ingestion_key(c: Context) -> t.IngestionKeyCreateResponse:
    ttl_ms = c.ingestion_key_ttl_ms if c.body.ttl_ms is None else c.body.ttl_ms
    return c.store.create_ingestion_key(c.org, c.experiment_id, c.body.name, ttl_ms)


def revoke_ingestion_key(c: Context) -> t.IngestionKeyResponse:
    key_id = parse_id("ingestion key", c.path["key_id"])
    return t.IngestionKeyResponse(c.store.revoke_ingestion_key(c.org, c.experiment_id, key_id))


def list_annotations(c: Context) -> t.AnnotationsResponse:
    return t.AnnotationsResponse(c.store.list_annotations(c.org, c.experiment_id, c.query))


def create_annotation(c: Context) -> t.ExperimentAnnotationResponse:
    made = c.store.create_annotation(c.org, c.experiment_id, c.body)
    made.experiment = c.absolute(made.experiment)
    return made


def chart_series(c: Context) -> ct.ChartSeriesResponse:
    q: ct.ChartQuery = c.query
    if len(q.metric_name) > ct.MAX_CHART_METRICS:
        raise InvalidRequestError(
            f"at most {ct.MAX_CHART_METRICS} metric_name parameters, got {len(q.metric_name)}: "
            "ask for the charts in several requests"
        )
    width = ct.DEFAULT_CHART_WIDTH if q.width is None else q.width
    sources = c.store.chart_sources(c.org, c.experiment_id, q.metric_name, q.from_step, q.to_step)
    return ct.ChartSeriesResponse(
        [downsample(source, width, q.from_step, q.to_step) for source in sources], width
    )


def experiment_summaries(c: Context) -> ct.ExperimentSummariesResponse:
    q: ct.SummaryQuery = c.query
    if len(q.experiment_id) > ct.MAX_SUMMARIES or len(q.metric_name) > ct.MAX_SUMMARY_METRICS:
        raise InvalidRequestError(
            f"at most {ct.MAX_SUMMARIES} experiment_id and {ct.MAX_SUMMARY_METRICS} "
            f"metric_name parameters, got {len(q.experiment_id)} and {len(q.metric_name)}: "
            "ask for the summaries in several requests"
        )
    found = c.store.experiment_summaries(c.org, q.experiment_id, q.metric_name)
    return ct.ExperimentSummariesResponse(found)


def create_login_token(c: Context) -> ct.LoginTokenResponse:
    if c.principal.kind != "api":
        raise ApiError(403, "forbidden", "only an API key can mint a login token")
    ttl_ms = LOGIN_TOKEN_TTL_MS if c.body.ttl_ms is None else c.body.ttl_ms
    token, expires_ms = c.sessions.mint(c.principal, ttl_ms)
    return ct.LoginTokenResponse(ct.LoginToken(login_url(c.origin, token), expires_ms))


HANDLERS: dict[str, Handler] = {
    handler.__name__: handler
    for handler in (
        auth_status,
        list_folders,
        create_folder,
        get_folder,
        patch_folder,
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
        chart_series,
        experiment_summaries,
        create_login_token,
    )
}

__all__ = ["HANDLERS", "Context", "Handler"]
