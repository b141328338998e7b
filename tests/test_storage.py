"""The storage semantics, proven on both engines through the one ``Store`` interface: each
(series, step) stored once and the first write wins; batches idempotent by (producer,
sequence); ``client_event_id`` idempotent; an Idempotency-Key's first answer replayed. Then
what only a shared database has to show: stores opened together migrate once, two stores
(two replicas) writing the same points store them once, and a request acting on an
Idempotency-Key is seen in progress by the other store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from conftest import ENGINES

from metrana.api import _types as t
from metrana.storage import (
    ConflictError,
    InProgressError,
    SeriesColumns,
    Store,
    is_database_url,
    open_store,
)

LOSS = ("loss", "ML_STEP", "{}")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(store_location: str) -> Iterator[Store]:
    opened = open_store(store_location)
    yield opened
    opened.close()


def columns(steps: list[int], value: float) -> SeriesColumns:
    return SeriesColumns(steps, [value + s for s in steps], [1] * len(steps))


def test_the_location_names_the_engine(store: Store, engine: str) -> None:
    assert type(store).__name__ == {"sqlite": "SqliteStore", "postgresql": "PostgresStore"}[engine]
    assert is_database_url(store.location) == (engine == "postgresql")


def test_each_step_is_stored_once_and_the_first_write_wins(store: Store) -> None:
    run = store.open_run("w", "p", None, "r", "job", allow_resume=True)
    first = store.write_points(run.experiment_id, {LOSS: columns([0, 1, 2], 0.0)})
    again = store.write_points(run.experiment_id, {LOSS: columns([1, 2, 3, 3], 100.0)})
    assert (first.accepted, first.duplicates) == (3, 0)
    assert (again.accepted, again.duplicates, again.duplicates_by_series) == (1, 3, {"loss": 3})
    assert [(p.step, p.value) for p in store.points(run.experiment_id)] == [
        (0, 0.0), (1, 1.0), (2, 2.0), (3, 103.0)
    ]  # fmt: skip
    assert store.count_points() == 4
    resumed = store.open_run("w", "p", None, "r", "job", allow_resume=True)
    assert (resumed.created, resumed.resume) == (False, [("loss", "ML_STEP", "{}", 3)])


def test_a_producer_batch_is_applied_once(store: Store) -> None:
    run = store.open_run("w", "p", None, "r", "job", allow_resume=True)
    result, replayed = store.write_batch("prod", 7, run.experiment_id, {LOSS: columns([0, 1], 0)})
    again, replayed_again = store.write_batch("prod", 7, run.experiment_id, {LOSS: columns([5], 0)})
    assert (result.accepted, replayed) == (2, False)
    assert (again.accepted, again.duplicates, replayed_again) == (2, 0, True)
    assert store.count_points() == 2


def test_client_event_ids_are_idempotent_and_null_steps_continue(store: Store) -> None:
    run = store.open_run("w", "p", None, "r", "job", allow_resume=True)
    org = store.organization_id("w")

    def event(event_id: str, step: int | None) -> t.MetricCreateInput:
        return t.MetricCreateInput(name="acc", value=0.5, step=step, client_event_id=event_id)

    first = store.ingest_json(org, run.experiment_id, [event("a", 4), event("b", None)])
    again = store.ingest_json(org, run.experiment_id, [event("a", 9), event("c", None)])
    assert (first.accepted, first.duplicates) == (2, 0)
    assert (again.accepted, again.duplicates) == (1, 1)
    assert [p.step for p in store.points(run.experiment_id)] == [4, 5, 6]


def test_an_idempotency_key_answers_its_first_answer(store: Store) -> None:
    calls: list[int] = []

    def act() -> tuple[int, bytes]:
        calls.append(1)
        return 200, b'{"n":%d}' % len(calls)

    assert store.idempotent("api:1", "k", "f1", act) == (200, b'{"n":1}')
    assert store.idempotent("api:1", "k", "f1", act) == (200, b'{"n":1}')
    with pytest.raises(ConflictError):
        store.idempotent("api:1", "k", "f2", act)
    assert calls == [1]
    assert store.forget_idempotency(older_than_ns=2**62) == 1


# -- a shared database: several replicas --------------------------------------------------


@pytest.fixture
def database(pg_cluster: object, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    from conftest import new_store_location

    return new_store_location("postgresql", tmp_path, request)


@pytest.mark.slow
def test_replicas_starting_together_migrate_once(database: str) -> None:
    stores: list[Store] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            stores.append(open_store(database))
        except BaseException as error:  # pragma: no cover - shown by the assert
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and len(stores) == 4
    for store in stores:
        store.close()


@pytest.mark.slow
def test_two_replicas_writing_the_same_points_store_them_once(database: str) -> None:
    one, two = open_store(database), open_store(database)
    try:
        run = one.open_run("w", "p", None, "r", "job", allow_resume=True)
        results = []

        def write(store: Store, offset: int) -> None:
            for start in range(0, 400, 20):
                batch = {LOSS: columns(list(range(start, start + 20)), float(offset))}
                results.append(store.write_points(run.experiment_id, batch))

        threads = [threading.Thread(target=write, args=(s, i)) for i, s in enumerate((one, two))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sum(r.accepted for r in results) == 400
        assert sum(r.duplicates for r in results) == 400
        steps = [p.step for p in two.points(run.experiment_id)]
        assert steps == list(range(400))
    finally:
        one.close()
        two.close()


@pytest.mark.slow
def test_a_key_being_acted_on_is_in_progress_for_another_replica(database: str) -> None:
    one, two = open_store(database), open_store(database)
    acting, release = threading.Event(), threading.Event()

    def slow() -> tuple[int, bytes]:
        acting.set()
        assert release.wait(30)
        return 200, b"{}"

    answers: list[tuple[int, bytes]] = []
    first = threading.Thread(target=lambda: answers.append(one.idempotent("s", "k", "f", slow)))
    first.start()
    try:
        assert acting.wait(10)
        with pytest.raises(InProgressError):
            two.idempotent("s", "k", "f", lambda: (500, b"acted twice"))
    finally:
        release.set()
        first.join(30)
    assert answers == [(200, b"{}")]
    assert two.idempotent("s", "k", "f", lambda: (500, b"acted twice")) == (200, b"{}")
    one.close()
    two.close()


@pytest.mark.slow
def test_the_cli_takes_a_database_url_from_metrana_store(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import cli

    monkeypatch.setenv("METRANA_STORE", database)
    created = msgspec.json.decode(cli("keys", "create", "--org", "research", "--json").stdout)
    listed = msgspec.json.decode(cli("keys", "list", "--json").stdout)
    assert [(k["id"], k["organization"]) for k in listed] == [(created["id"], "research")]
    assert cli("runs").stdout.strip() == "no runs"
