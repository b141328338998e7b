"""The real Syvain Metrics API client (``syvain-metrics-api-client`` 0.0.62, a test-only
dependency) against a live ``metrana serve``: the conformance suite of the REST dialect.

One test per client method, each asserting the answer ``../shared/syvain-api.md`` describes.
What Metrana does not serve yet is marked ``xfail(strict=True)`` with the reason: such a test
must fail with the client's own error, and the day it passes, the strict mark fails the suite
until the mark is removed. The list of marks is the list of what remains of the dialect.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from syvain_metrics_api_client import (
    ComparisonMetricSeries,
    MetricsApiRequestError,
    MetricsApiResponseError,
    SyvainMetricsApiClient,
)

from metrana.testing import RunningServer, serve_in_thread

# What a call that Metrana does not serve yet fails with: the client refuses the answer's shape,
# or the server refuses the request (a route or a field it does not have).
NOT_YET = (MetricsApiRequestError, MetricsApiResponseError)


def not_yet(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(reason=reason, raises=NOT_YET, strict=True)


MODELS = "data model: string ids, ms times, org/folder/experiment models of syvain-api.md"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    store = tmp_path_factory.mktemp("conformance") / "store.sqlite"
    with serve_in_thread(str(store)) as running:
        yield running


@pytest.fixture
def syvain(server: RunningServer) -> Iterator[SyvainMetricsApiClient]:
    client = SyvainMetricsApiClient(server.api_key, host=server.url)
    yield client


def _experiment_id(client: SyvainMetricsApiClient, slug: str) -> str:
    created = client.create_experiment(slug, description="d", metadata={"model": "mamba"})
    return str(created.experiment.id)


# -- what conforms already -----------------------------------------------------------------


def test_an_error_answer_has_the_status_code_and_machine_code(
    syvain: SyvainMetricsApiClient,
) -> None:
    with pytest.raises(MetricsApiRequestError) as caught:
        syvain.get_experiment("999")
    error = caught.value
    assert (error.status_code, error.error_code, error.retryable) == (404, "not_found", False)
    assert str(error) == "HTTP 404: no experiment 999 in this workspace: code=not_found"


def test_an_unknown_key_is_refused_with_401(server: RunningServer) -> None:
    stranger = SyvainMetricsApiClient("mtr_not_a_key", host=server.url)
    with pytest.raises(MetricsApiRequestError) as caught:
        stranger.list_folders()
    assert (caught.value.status_code, caught.value.error_code) == (401, "unauthorized")


# -- one test per method -------------------------------------------------------------------


def test_auth_status(syvain: SyvainMetricsApiClient) -> None:
    status = syvain.auth_status()
    assert status.auth.kind == "api_key"
    assert (status.organization.id, status.organization.name) == ("1", "default")


@not_yet(MODELS)
def test_folders_create_list_get_rename_move(syvain: SyvainMetricsApiClient) -> None:
    top = syvain.create_folder("top").folder
    sub = syvain.create_folder("sub", parent_id=top.folder_id).folder
    assert [f.name for f in syvain.list_folders().folders] == ["top"]
    contents = syvain.get_folder(top.folder_id)
    assert [f.name for f in contents.folders] == ["sub"]
    assert syvain.rename_folder(sub.folder_id, "renamed").folder.name == "renamed"
    assert syvain.move_folder(sub.folder_id, None).folder.parent_id_path == []


@not_yet("create_experiment takes a slug (and no folder): " + MODELS)
def test_experiments_create_get_list_status_and_move(syvain: SyvainMetricsApiClient) -> None:
    experiment = syvain.create_experiment(
        "mamba-run-001", description="Baseline", metadata={"model": "mamba"}
    ).experiment
    assert (experiment.slug, experiment.status) == ("mamba-run-001", "created")
    assert syvain.get_experiment(experiment.id).experiment.id == experiment.id
    assert [e.slug for e in syvain.list_experiments(slug="mamba-run-001").experiments] == [
        "mamba-run-001"
    ]
    running = syvain.update_experiment_status(experiment.id, "running").experiment
    assert running.status == "running" and running.started_at_ms is not None
    assert syvain.move_experiment(experiment.id, None).experiment.folder is None


@not_yet("POST /experiments/{id}/ingest with client_event_id and metadata: " + MODELS)
def test_ingest_retried_with_the_same_client_event_id_is_stored_once(
    syvain: SyvainMetricsApiClient,
) -> None:
    experiment_id = _experiment_id(syvain, "ingest-once")
    event = {"client_event_id": "e-1", "name": "loss", "value": 0.42, "step": 1, "metadata": {}}
    assert syvain.ingest_metrics(experiment_id, [event], sync=True).ok
    syvain.ingest_metrics(experiment_id, [event], sync=True)
    assert len(syvain.list_metrics(experiment_id, metric_name="loss").rows) == 1


@not_yet("GET /metrics?series=... answers rows: " + MODELS)
def test_compare_metrics_over_two_experiments_filtered_by_metadata(
    syvain: SyvainMetricsApiClient,
) -> None:
    first, second = _experiment_id(syvain, "cmp-a"), _experiment_id(syvain, "cmp-b")
    for experiment_id in (first, second):
        syvain.ingest_metrics(
            experiment_id,
            [
                {
                    "client_event_id": f"{experiment_id}-{split}",
                    "name": "loss",
                    "value": 1.0,
                    "step": 1,
                    "metadata": {"split": split},
                }
                for split in ("train", "eval")
            ],
            sync=True,
        )
    series = [
        ComparisonMetricSeries(
            experiment_id=e, metric_name="loss", metadata_key="split", metadata_value="train"
        )
        for e in (first, second)
    ]
    rows = syvain.compare_metrics(series, limit=500).rows
    assert sorted(r.experiment_id for r in rows) == sorted([first, second])


@not_yet("GET /experiments/{id}/catalog and /catalog/{metric}: " + MODELS)
def test_catalog_listing_and_value_inspection(syvain: SyvainMetricsApiClient) -> None:
    experiment_id = _experiment_id(syvain, "catalog")
    syvain.ingest_metrics(
        experiment_id,
        [{"client_event_id": "c", "name": "loss", "value": 1.0, "step": 1, "metadata": {"a": 1}}],
        sync=True,
    )
    assert [m.metric_name for m in syvain.list_metric_catalog(experiment_id).metrics] == ["loss"]
    values = syvain.inspect_metric_catalog_values(experiment_id, "loss", key="a")
    assert values.metadata.keys[0].values == [1]


@not_yet("ingestion keys of string ids, DELETE /experiments/{id}/ingestion-keys/{key_id}")
def test_ingestion_keys_revoked_and_expired_are_refused(syvain: SyvainMetricsApiClient) -> None:
    experiment_id = _experiment_id(syvain, "keys")
    created = syvain.create_ingestion_key(experiment_id, ttl_ms=60_000)
    assert created.key.expires_at_ms > created.key.created_at_ms
    revoked = syvain.revoke_ingestion_key(experiment_id, created.key.id).key
    assert revoked.revoked_at_ms is not None


@not_yet("annotations {annotation, metadata}: " + MODELS)
def test_annotations(syvain: SyvainMetricsApiClient) -> None:
    experiment_id = _experiment_id(syvain, "notes")
    created = syvain.create_annotation(experiment_id, "lr drop", metadata={"step": 100})
    assert created.annotation.annotation == "lr drop"
    assert [a.annotation for a in syvain.list_annotations(experiment_id).annotations] == ["lr drop"]


def test_the_suite_runs_the_real_client() -> None:
    """Not a stand-in: the package the suite imports is the one from PyPI, at 0.0.62."""
    from importlib.metadata import distribution, version

    import syvain_metrics_api_client

    assert version("syvain-metrics-api-client") == "0.0.62"
    installed = distribution("syvain-metrics-api-client").locate_file(
        "syvain_metrics_api_client/__init__.py"
    )
    assert Path(syvain_metrics_api_client.__file__).resolve() == Path(str(installed)).resolve()
