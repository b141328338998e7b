"""The conformance suite of the REST dialect: every method of the Syvain Metrics API client
against a live ``metrana serve``, run three times, by the real ``syvain-metrics-api-client``
0.0.62 (a test-only dependency), by ``metrana.Client`` and by ``metrana.AsyncClient`` (driven
through :class:`Blocking`, so one test body serves all three); then the real
``syvain-metrics-collector`` 0.0.62 records an experiment end to end.

Each test asserts what ``../shared/syvain-api.md`` and ``docs/rest-client.md`` say the answer
is. The server runs in a thread of this process, on its own store: a SQLite file, then a
PostgreSQL database (the second round is slow: it starts a throwaway cluster).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import syvain_metrics_api_client as syvain
from _api_mock import Blocking
from conftest import ENGINES, new_store_location
from syvain_metrics_collector import Collector

import metrana
from metrana.testing import RunningServer, serve_in_thread, wait_until

FLAVORS = ("syvain", "metrana", "metrana-async")
DAY_MS = 24 * 3600 * 1000


@pytest.fixture(scope="module", params=ENGINES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """The suite's server, over a SQLite file, then over a PostgreSQL database."""
    location = new_store_location(request.param, tmp_path_factory.mktemp("conformance"), request)
    with serve_in_thread(location) as running:
        yield running


@dataclass
class Api:
    """One flavor of client: the client of the suite's server, the package's request error and
    comparison series, and a way to build another client (another key) of the same flavor."""

    flavor: str
    client: Any
    request_error: type[Exception]
    series: Callable[..., Any]
    make: Callable[[str], Any]


@pytest.fixture(params=FLAVORS)
def api(request: pytest.FixtureRequest, server: RunningServer) -> Iterator[Api]:
    flavor: str = request.param
    made: list[Any] = []

    def make(auth: str) -> Any:
        if flavor == "syvain":
            return syvain.SyvainMetricsApiClient(auth, host=server.url)
        client: Any = (
            Blocking(metrana.AsyncClient(auth, host=server.url))
            if flavor == "metrana-async"
            else metrana.Client(auth, host=server.url)
        )
        made.append(client)
        return client

    package: Any = syvain if flavor == "syvain" else metrana
    yield Api(flavor, make(server.api_key), package.MetricsApiRequestError,
              package.ComparisonMetricSeries, make)  # fmt: skip
    for client in made:  # the Syvain client holds no connections of its own
        client.close()


def unique(prefix: str) -> str:
    """A name no other test (or flavor) of the module's server uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_experiment(api: Api, prefix: str, **fields: Any) -> Any:
    fields.setdefault("metadata", {"model": "mamba"})
    return api.client.create_experiment(unique(prefix), **fields).experiment


def event(event_id: str, name: str, value: float, step: int | None, **more: Any) -> dict[str, Any]:
    return {"client_event_id": event_id, "name": name, "value": value, "step": step, **more}


def refused(api: Api, status: int, call: Callable[[], Any]) -> Any:
    """The request error ``call`` raises, checked to carry ``status``."""
    with pytest.raises(api.request_error) as caught:
        call()
    error: Any = caught.value
    assert error.status_code == status, str(error)
    return error


# -- auth and errors -------------------------------------------------------------------------


def test_auth_status(api: Api) -> None:
    status = api.client.auth_status()
    assert status.auth.kind == "api_key"
    assert (status.organization.id, status.organization.name) == ("1", "default")


def test_an_error_answer_has_the_status_code_and_machine_code(api: Api) -> None:
    error = refused(api, 404, lambda: api.client.get_experiment("999999"))
    assert (error.error_code, error.retryable) == ("not_found", False)
    assert str(error).startswith("HTTP 404: ") and str(error).endswith(": code=not_found")


def test_an_unknown_key_is_refused_with_401(api: Api) -> None:
    stranger = api.make("mtr_not_a_key")
    error = refused(api, 401, stranger.list_folders)
    assert error.error_code == "unauthorized" and not error.retryable


# -- folders and experiments -------------------------------------------------------------------


def test_folders_create_list_get_patch_rename_and_move(api: Api) -> None:
    client = api.client
    top = client.create_folder(unique("top")).folder
    sub = client.create_folder(unique("sub"), parent_id=top.folder_id).folder
    assert (top.parent_id_path, sub.parent_id_path) == ([], [top.folder_id])
    assert sub.path_name == f"{top.name}/{sub.name}"
    assert [f.folder_id for f in client.list_folders(path=sub.path_name).folders] == [sub.folder_id]
    assert {top.folder_id, sub.folder_id} <= {f.folder_id for f in client.list_folders().folders}
    experiment = new_experiment(api, "in-top", folder_id=top.folder_id)
    contents = client.get_folder(top.folder_id)
    assert contents.folder.folder_id == top.folder_id
    assert [f.folder_id for f in contents.folders] == [sub.folder_id]
    assert [e.id for e in contents.experiments] == [experiment.id]
    renamed = client.rename_folder(sub.folder_id, unique("renamed")).folder
    assert renamed.path_name == f"{top.name}/{renamed.name}"
    moved = client.move_folder(sub.folder_id, None).folder
    assert (moved.parent_id_path, moved.path_name) == ([], renamed.name)
    both = client.patch_folder(sub.folder_id, name=unique("both"), parent_id=top.folder_id)
    assert both.folder.parent_id_path == [top.folder_id]
    assert client.get_folder(top.folder_id).folders[0].name == both.folder.name


def test_experiments_create_get_list_and_search(api: Api) -> None:
    client = api.client
    description = unique("Baseline mamba training run")
    experiment = new_experiment(api, "mamba-run", description=description)
    assert (experiment.status, experiment.description) == ("created", description)
    assert (experiment.metadata, experiment.folder) == ({"model": "mamba"}, None)
    assert experiment.url.endswith(f"/experiments/{experiment.id}")
    assert client.get_experiment(experiment.id).experiment.slug == experiment.slug

    def slugs(**filters: Any) -> list[str]:
        return [e.slug for e in client.list_experiments(**filters).experiments]

    assert slugs(slug=experiment.slug) == [experiment.slug]
    assert slugs(search=description.upper()[-12:]) == [experiment.slug]
    assert experiment.slug in slugs(status="created")
    assert experiment.slug not in slugs(status="running")
    created = experiment.created_at_ms
    assert experiment.slug in slugs(from_ms=created, to_ms=created + 1)
    assert experiment.slug not in slugs(to_ms=created)
    assert len(client.list_experiments(limit=1).experiments) == 1


def test_status_updates_and_moves(api: Api) -> None:
    client = api.client
    experiment = new_experiment(api, "lifecycle")
    running = client.update_experiment_status(experiment.id, "running").experiment
    assert running.status == "running" and running.started_at_ms is not None
    done = client.update_experiment_status(experiment.id, "done", timestamp_ms=123_456).experiment
    assert (done.status, done.done_at_ms) == ("done", 123_456)
    failed = client.update_experiment_status(
        experiment.id, "error", error={"name": "ValueError", "detail": "loss is nan"}
    ).experiment
    assert (failed.status, failed.error_name, failed.error_detail) == (
        "error",
        "ValueError",
        "loss is nan",
    )
    folder = client.create_folder(unique("runs")).folder
    moved = client.move_experiment(experiment.id, folder.folder_id).experiment
    assert moved.folder.folder_id == folder.folder_id
    assert client.move_experiment(experiment.id, None).experiment.folder is None


# -- metrics --------------------------------------------------------------------------------------


def test_ingest_retried_with_the_same_client_event_id_is_stored_once(api: Api) -> None:
    client = api.client
    experiment = new_experiment(api, "ingest-once")
    first = event("run/loss/1", "loss", 0.42, 1, metadata={"split": "train"})
    answer = client.ingest_metrics(experiment.id, [first], sync=True)
    assert (answer.ok, answer.mode) == (True, "sync")
    client.ingest_metrics(experiment.id, [first], sync=True)  # the retry
    client.ingest_metrics(experiment.id, [{**first, "value": 9.0}], sync=True)  # first wins
    rows = client.list_metrics(experiment.id, metric_name="loss").rows
    assert [(r.metric_value, r.step) for r in rows] == [(0.42, 1)]
    assert json.loads(rows[0].event_metadata_json) == {"split": "train"}
    assert (rows[0].experiment_id, rows[0].experiment_slug) == (experiment.id, experiment.slug)
    without_step = event("e-next", "loss", 0.4, None, metadata={"split": "train"})
    client.ingest_metrics(experiment.id, [without_step], sync=True)
    steps = [r.step for r in client.list_metrics(experiment.id, metric_name="loss").rows]
    assert steps == [1, 2]  # an event without a step gets the series' next one


def test_list_metrics_filters_sorts_and_limits(api: Api) -> None:
    client = api.client
    experiment = new_experiment(api, "filters")
    events = [
        event(f"{split}/{step}", "loss", step / 10, step, timestamp_ms=1_000 + step,
              metadata={"split": split, "seed": 1 if split == "train" else 2})
        for split in ("train", "eval")
        for step in range(5)
    ] + [event("acc/0", "acc", 0.5, 0)]  # fmt: skip
    client.ingest_metrics(experiment.id, events, sync=True)

    def steps(**filters: Any) -> list[Any]:
        return [r.step for r in client.list_metrics(experiment.id, **filters).rows]

    train = {"metric_name": "loss", "metadata_key": "split", "metadata_value": "train"}
    assert len(steps()) == 11 and len(steps(metric_name="loss")) == 10
    assert steps(**train) == [0, 1, 2, 3, 4]
    assert steps(metric_name="loss", metadata_key="seed", metadata_value_json="1") == (
        steps(**train)
    )
    assert steps(**train, from_step=1, to_step=3) == [1, 2, 3]
    assert steps(metric_name="loss", step=2) == [2, 2]
    assert steps(**train, sort_by=["step"], sort_direction="desc", limit=2) == [4, 3]
    assert steps(**train, from_time=1_001, to_time=1_002) == [1, 2]
    rows = client.list_metrics(experiment.id, **train, include_experiment_meta_as_of=True).rows
    assert json.loads(rows[0].experiment_metadata_json) == {"model": "mamba"}


def test_compare_metrics_over_two_experiments_filtered_by_metadata(api: Api) -> None:
    client = api.client
    first, second = new_experiment(api, "cmp-a"), new_experiment(api, "cmp-b")
    for experiment in (first, second):
        client.ingest_metrics(
            experiment.id,
            [
                event(f"{split}/{step}", "loss", 1.0 + step, step, metadata={"split": split})
                for split in ("train", "eval")
                for step in range(3)
            ],
            sync=True,
        )
    series = [
        api.series(
            experiment_id=e.id, metric_name="loss", metadata_key="split", metadata_value="train"
        )
        for e in (first, second)
    ]
    rows = client.compare_metrics(series, sort_by=["series", "step"], limit=500).rows
    assert [(r.experiment_id, r.step) for r in rows] == [
        (e.id, step) for e in (first, second) for step in range(3)
    ]
    assert {json.loads(r.event_metadata_json)["split"] for r in rows} == {"train"}
    as_mappings = [
        {"experiment_id": first.id, "metric_name": "loss", "metadata_key": "split",
         "metadata_value_json": '"eval"'},
        {"experiment_id": second.id, "metric_name": "loss"},
    ]  # fmt: skip
    rows = client.compare_metrics(as_mappings, from_step=1, to_step=1).rows
    assert sorted((r.experiment_id, r.step) for r in rows) == [
        (first.id, 1),
        (second.id, 1),
        (second.id, 1),
    ]
    assert len(client.compare_metrics(as_mappings, limit=2).rows) == 2


def test_catalog_listing_and_value_inspection(api: Api) -> None:
    client = api.client
    experiment = new_experiment(api, "catalog")
    client.ingest_metrics(
        experiment.id,
        [
            event("a", "loss", 1.0, 1, metadata={"split": "train", "seed": 1}),
            event("b", "loss", 1.0, 1, metadata={"split": "eval", "seed": 1}),
            event("c", "acc", 1.0, 1),
        ],
        sync=True,
    )
    catalog = {
        m.metric_name: m.metadata_keys for m in client.list_metric_catalog(experiment.id).metrics
    }
    assert catalog == {"acc": [], "loss": ["seed", "split"]}
    assert len(client.list_metric_catalog(experiment.id, limit=1).metrics) == 1
    values = client.inspect_metric_catalog_values(experiment.id, "loss", key="split").metadata
    assert (values.metric_name, values.scanned_event_count) == ("loss", 2)
    assert [(k.key, sorted(k.values), k.value_count) for k in values.keys] == [
        ("split", ["eval", "train"], 2)
    ]
    both = client.inspect_metric_catalog_values(experiment.id, "loss", key=["split", "seed"])
    assert {k.key: k.values for k in both.metadata.keys}["seed"] == [1]
    every = client.inspect_metric_catalog_values(experiment.id, "loss", limit=1).metadata
    assert {k.key for k in every.keys} == {"seed", "split"}
    assert all(len(k.values) <= 1 for k in every.keys)


# -- ingestion keys and annotations ------------------------------------------------------------


def test_ingestion_keys_minted_listed_revoked_and_expired(api: Api) -> None:
    client = api.client
    experiment = new_experiment(api, "keys")
    created = client.create_ingestion_key(experiment.id, name="ci", ttl_ms=60_000)
    key = created.key
    assert (key.name, key.experiment_id, key.revoked_at_ms) == ("ci", experiment.id, None)
    assert key.expires_at_ms - key.created_at_ms == 60_000
    default = client.create_ingestion_key(experiment.id).key
    assert default.expires_at_ms - default.created_at_ms == DAY_MS  # documented default
    assert default.name == "SDK ingestion key"
    listed = client.list_ingestion_keys(experiment.id).keys
    assert {k.id for k in listed} == {key.id, default.id}
    assert api.make(created.token).auth_status().auth.kind == "ingestion_key"
    revoked = client.revoke_ingestion_key(experiment.id, key.id).key
    assert revoked.revoked_at_ms is not None and revoked.id == key.id
    refused(api, 401, api.make(created.token).auth_status)
    short = client.create_ingestion_key(experiment.id, ttl_ms=1)
    wait_until(lambda: time.time() * 1000 >= short.key.expires_at_ms + 1, 5)  # ms floored
    refused(api, 401, api.make(short.token).auth_status)
    refused(api, 404, lambda: client.revoke_ingestion_key(experiment.id, "not-a-key-id"))


def test_a_revoked_cached_key_is_replaced_and_nothing_is_lost(api: Api) -> None:
    client = api.client
    experiment = new_experiment(api, "remint")
    client.ingest_metrics(experiment.id, [event("1", "loss", 1.0, 1)], sync=True)
    (minted,) = client.list_ingestion_keys(experiment.id).keys
    assert minted.name == "SDK ingestion key" and minted.last_used_at_ms is not None
    client.revoke_ingestion_key(experiment.id, minted.id)
    client.ingest_metrics(experiment.id, [event("2", "loss", 2.0, 2)], sync=True)  # 401, re-mint
    client.create_annotation(experiment.id, "after the new key")
    keys = client.list_ingestion_keys(experiment.id).keys
    assert [k.revoked_at_ms is None for k in sorted(keys, key=lambda k: k.created_at_ms)] == [
        False,
        True,
    ]
    assert [r.step for r in client.list_metrics(experiment.id).rows] == [1, 2]
    client.forget_ingestion_credential(experiment.id)  # the next call mints a third key
    client.ingest_metrics(experiment.id, [event("3", "loss", 3.0, 3)], sync=True)
    assert len(client.list_ingestion_keys(experiment.id).keys) == 3


def test_annotations(api: Api) -> None:
    client = api.client
    experiment = new_experiment(api, "notes")
    created = client.create_annotation(experiment.id, "lr drop", metadata={"step": 100})
    assert created.annotation.annotation == "lr drop"
    assert created.annotation.metadata == {"step": 100}
    assert created.experiment.id == experiment.id
    second = client.create_annotation(experiment.id, "eval").annotation
    notes = client.list_annotations(experiment.id).annotations
    assert [a.annotation for a in notes] == ["lr drop", "eval"]
    since = client.list_annotations(experiment.id, from_ms=second.created_at_ms).annotations
    assert "eval" in [a.annotation for a in since]
    before = client.list_annotations(experiment.id, to_ms=created.annotation.created_at_ms)
    assert before.annotations == []
    assert len(client.list_annotations(experiment.id, limit=1).annotations) == 1


def test_bad_arguments_are_refused_before_they_change_anything(api: Api) -> None:
    client = api.client
    before = client.list_folders().folders
    experiment = new_experiment(api, "refusals")
    too_many = [event(str(n), "l", 1.0, n) for n in range(1_001)]
    no_key = {"experiment_id": experiment.id, "metric_name": "l", "metadata_value": "x"}
    for call in (
        lambda: client.create_folder("x" * 201),
        lambda: client.patch_folder("1"),
        lambda: client.create_experiment("s", metadata={"lr": float("nan")}),
        lambda: client.ingest_metrics(experiment.id, [event("n", "loss", float("inf"), 1)]),
        lambda: client.ingest_metrics(experiment.id, too_many),
        lambda: client.compare_metrics([no_key]),
        lambda: client.create_ingestion_key(experiment.id, ttl_ms=8 * DAY_MS),
    ):
        with pytest.raises(ValueError):
            call()
    assert client.list_folders().folders == before
    assert client.list_metrics(experiment.id).rows == []
    assert client.list_ingestion_keys(experiment.id).keys == []  # no key was even minted


# -- the collector -------------------------------------------------------------------------------


def test_the_collector_records_an_experiment_end_to_end(api: Api, server: RunningServer) -> None:
    """The README usage of ``syvain-metrics-collector``, into a folder; read back by ``api``."""
    folder = api.client.create_folder(unique("collected")).folder
    slug = unique("mamba-run-001")
    collector = Collector(api_key=server.api_key, host=server.url, flush_delay_seconds=0.01)
    experiment = collector.experiment(
        slug,
        description="Baseline mamba training run",
        meta={"model": "mamba", "seed": 7},
        folder_path=folder.path_name,
    )
    with experiment.run():
        for step in range(100):
            experiment.metric("loss", 1.0 / (step + 1), step=step, metadata={"split": "train"})
        experiment.annotation("saved checkpoint", metadata={"path": f"{slug}/step-99.pt"})
    experiment.flush_or_raise()

    (stored,) = api.client.list_experiments(slug=slug).experiments
    assert (stored.id, stored.status, stored.folder.folder_id) == (
        experiment.id,
        "done",
        folder.folder_id,
    )
    assert stored.metadata == {"model": "mamba", "seed": 7}
    assert stored.started_at_ms is not None and stored.done_at_ms is not None
    rows = api.client.list_metrics(stored.id, metric_name="loss", limit=1_000).rows
    assert [(r.step, r.metric_value) for r in rows] == [(s, 1.0 / (s + 1)) for s in range(100)]
    (note,) = api.client.list_annotations(stored.id).annotations
    assert note.annotation == "saved checkpoint"


def test_the_suite_runs_the_real_clients() -> None:
    """Not stand-ins: the packages the suite imports are the ones from PyPI, at 0.0.62."""
    from importlib.metadata import distribution, version

    import syvain_metrics_collector

    for package, module in (
        ("syvain-metrics-api-client", syvain),
        ("syvain-metrics-collector", syvain_metrics_collector),
    ):
        assert version(package) == "0.0.62"
        name = module.__name__
        installed = distribution(package).locate_file(f"{name}/__init__.py")
        assert Path(str(module.__file__)).resolve() == Path(str(installed)).resolve()
