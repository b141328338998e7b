"""A store written before organizations (schema 2) opens with everything in it, reshaped; one
of schema 3 (before the dashboard's logins were rows) gains their tables, on both engines; one
of schema 4 gets its large tables keyed by experiment first, on both engines, with every
point, batch record and client event id kept."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from metrana.api import _types as t
from metrana.server._serve import dashboard_principal
from metrana.server._sessions import Sessions
from metrana.storage import NotFoundError, SqliteStore, Store, open_store
from metrana.storage._base import SeriesColumns, WriteResult
from metrana.storage._migrations import SCHEMA_VERSION
from metrana.testing import PostgresCluster

DUMP = Path(__file__).parent / "data" / "store_schema2.sql"
TEAM_A_KEY = "mtr_xc3VvWoZlRCX5zCCrKIHHo9fFuBJsW6lzNqQpkPhZ9A"


@pytest.fixture
def migrated(tmp_path: Path) -> SqliteStore:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(DUMP.read_text())
    store = SqliteStore(path)
    yield store
    store.close()


def test_the_store_is_at_the_current_version(migrated: SqliteStore) -> None:
    with migrated.reading() as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_workspaces_become_organizations_and_top_level_folders(migrated: SqliteStore) -> None:
    assert migrated.organization_names() == ["team-a", "team-b"]
    principal = migrated.authenticate(TEAM_A_KEY)
    assert principal is not None and principal.org_name == "team-a"
    paths = [f.path_name for f in migrated.list_folders(principal.org_id, None)]
    assert paths == ["team-a", "team-a/vision", "team-a/vision/ablation"]
    # a run keeps its address: workspace / project [/ experiment] / run
    runs = {(r.organization, r.workspace, r.project, r.experiment_name, r.run_name): r
            for r in migrated.runs()}  # fmt: skip
    assert set(runs) == {
        ("team-a", "team-a", "vision", None, "run-1"),
        ("team-a", "team-a", "vision", "ablation", "run-2"),
        ("team-b", "team-b", "vision", None, "run-1"),
    }
    assert migrated.find_run("team-a", "vision", "run-2", "ablation") is not None


def test_points_and_statuses_are_kept(migrated: SqliteStore) -> None:
    principal = migrated.authenticate(TEAM_A_KEY)
    assert principal is not None
    run = migrated.find_run("team-a", "vision", "run-1")
    assert run is not None and run.points == 6 and run.series == 3
    rows = migrated.list_metrics(principal.org_id, run.experiment_id,
                                 t.ListMetricsQuery(metric_name="loss")).rows  # fmt: skip
    assert [(r.step, r.metric_value) for r in rows] == [(0, 1.0), (1, 0.5), (2, "nan")]
    # stored before chunks kept a storage time: the server timestamp is the client's
    assert rows[0].server_timestamp_ms == rows[0].client_timestamp_ms == 10**12
    done = migrated.get_experiment(principal.org_id, run.experiment_id)
    assert (done.status, done.error_name, done.done_at_ms is not None) == ("done", None, True)
    crashed_run = migrated.find_run("team-a", "vision", "run-2", "ablation")
    assert crashed_run is not None
    crashed = migrated.get_experiment(principal.org_id, crashed_run.experiment_id)
    assert (crashed.status, crashed.error_name) == ("error", "Crashed")
    assert crashed.slug == "run-2" and crashed.folder is not None
    assert crashed.folder.path_name == "team-a/vision/ablation"


def test_keys_annotations_and_event_ids_are_kept(migrated: SqliteStore) -> None:
    principal = migrated.authenticate(TEAM_A_KEY)
    assert principal is not None
    run = migrated.find_run("team-a", "vision", "run-1")
    assert run is not None
    keys = migrated.list_ingestion_keys(principal.org_id, run.experiment_id)
    assert [(k.name, k.revoked_at_ms) for k in keys] == [("dispatcher", None)]
    assert keys[0].expires_at_ms - keys[0].created_at_ms == 3_600_000
    notes = migrated.list_annotations(principal.org_id, run.experiment_id,
                                      t.ListAnnotationsQuery())  # fmt: skip
    assert [(a.annotation, a.metadata) for a in notes] == [("lr drop", {"by": "me", "step": 1})]
    # the client_event_id ingested before is still known: sending it again stores nothing
    again = t.MetricCreateInput(client_event_id="e1", name="lr", value=0.1, step=0)
    answer = migrated.ingest_json(principal.org_id, run.experiment_id, [again])
    assert (answer.accepted, answer.duplicates) == (0, 1)


def test_organizations_stay_apart(migrated: SqliteStore) -> None:
    team_a = migrated.authenticate(TEAM_A_KEY)
    assert team_a is not None
    other = migrated.find_run("team-b", "vision", "run-1")
    assert other is not None
    with pytest.raises(NotFoundError, match="in this organization"):
        migrated.get_experiment(team_a.org_id, other.experiment_id)


def test_an_embedded_run_resumes_where_it_was(migrated: SqliteStore) -> None:
    before = migrated.find_run("team-a", "vision", "run-1")
    handle = migrated.open_run("team-a", "vision", None, "run-1", "job-9", True)
    assert before is not None and not handle.created
    assert handle.experiment_id == before.experiment_id
    assert sorted(handle.resume) == [
        ("loss", "ML_STEP", "{}", 2), ("lr", "ML_STEP", "{}", 0),
        ("reward", "EPISODE", '{"env":"3"}', 1),
    ]  # fmt: skip
    new = migrated.open_run("team-a", "vision", None, "run-3", "job-9", True)
    run = migrated.find_run("team-a", "vision", "run-3")
    assert new.created and run is not None
    assert (run.organization, run.status) == ("team-a", "running")


def _set_back_to_schema_3(location: str) -> None:
    """Make the store at ``location`` one that Metrana's schema 3 left: no login tables."""
    store = open_store(location)
    try:
        with store.transaction() as conn:
            sqlite = isinstance(store, SqliteStore)
            for statement in (_BACK_TO_4_SQLITE if sqlite else _BACK_TO_4_POSTGRES).split(";"):
                conn.execute(statement)  # the keys of schema 4, which 3 had too
            conn.execute("DROP TABLE login_tokens")
            conn.execute("DROP TABLE dashboard_sessions")
            if isinstance(store, SqliteStore):
                conn.execute("PRAGMA user_version = 3")
            else:
                conn.execute("UPDATE metrana_schema SET version = 3")
    finally:
        store.close()


def _logins_work(location: str) -> None:
    store = open_store(location)
    try:
        sessions = Sessions(store)
        found = sessions.redeem(sessions.mint(dashboard_principal(store, "team-a"))[0])
        assert found is not None and sessions.lookup(found[0]) is not None
    finally:
        store.close()


def test_a_schema_3_sqlite_store_gains_the_login_tables(tmp_path: Path) -> None:
    location = str(tmp_path / "v3.db")
    store = open_store(location)
    run = store.open_run("team-a", "vision", None, "run-1", "job", True)
    store.close()
    _set_back_to_schema_3(location)
    _logins_work(location)
    reopened = SqliteStore(location)
    with reopened.reading() as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert reopened.find_run("team-a", "vision", "run-1") is not None
    assert reopened.runs()[0].experiment_id == run.experiment_id
    reopened.close()


@pytest.fixture
def pg_database(pg_cluster: PostgresCluster) -> Iterator[str]:
    """The URL of a new database of the session's cluster, dropped at the end."""
    location = pg_cluster.create_database()
    try:
        yield location
    finally:
        pg_cluster.drop_database(location)


@pytest.mark.slow  # a PostgreSQL cluster is a process
def test_a_schema_3_postgresql_store_gains_the_login_tables(pg_database: str) -> None:
    open_store(pg_database).close()
    _set_back_to_schema_3(pg_database)
    _logins_work(pg_database)
    store = open_store(pg_database)
    with store.reading() as conn:
        versions = conn.execute("SELECT version FROM metrana_schema").fetchall()
        assert versions == [(SCHEMA_VERSION,)]
    store.close()


# -- schema 4 to 5: the large tables keyed by experiment first ---------------------------------

# What schema 4 had where schema 5 differs, made from a store of schema 5 (the same rows).
_BACK_TO_4_SQLITE = """
ALTER TABLE chunks DROP COLUMN experiment_id;
DROP INDEX annotations_by_experiment;
CREATE TABLE producer_batches_v4 (producer_id TEXT NOT NULL, sequence INTEGER NOT NULL,
    accepted INTEGER NOT NULL, duplicates INTEGER NOT NULL,
    PRIMARY KEY (producer_id, sequence)) WITHOUT ROWID;
INSERT INTO producer_batches_v4 SELECT producer_id, sequence, accepted, duplicates
    FROM producer_batches;
DROP TABLE producer_batches;
ALTER TABLE producer_batches_v4 RENAME TO producer_batches;
PRAGMA user_version = 4
"""
_BACK_TO_4_POSTGRES = """
DROP INDEX chunks_by_last_step;
ALTER TABLE chunks DROP COLUMN experiment_id;
ALTER TABLE chunks ADD PRIMARY KEY (series_id, first_step);
CREATE INDEX chunks_by_last_step ON chunks(series_id, last_step);
ALTER TABLE series DROP CONSTRAINT series_pkey;
ALTER TABLE series ADD PRIMARY KEY (id);
ALTER TABLE annotations DROP CONSTRAINT annotations_pkey;
ALTER TABLE annotations ADD PRIMARY KEY (id);
ALTER TABLE producer_batches DROP COLUMN experiment_id;
ALTER TABLE producer_batches ADD PRIMARY KEY (producer_id, sequence);
UPDATE metrana_schema SET version = 4
"""
LOSS = ("loss", "ML_STEP", "{}")
REWARD = ("reward", "EPISODE", '{"env":"3"}')


def _fill(location: str) -> dict[str, object]:
    """Write runs of two organizations (dense and list chunks, producer batches, client
    events, an annotation, an ingestion key) into a new store, set it back to schema 4, and
    answer what it holds."""
    store = open_store(location)
    try:
        runs = [store.open_run(org, "vision", None, "run-1", "job", True) for org in ("a", "b")]
        for sequence in range(3):
            steps = list(range(sequence * 100, (sequence + 1) * 100))
            for n, run in enumerate(runs):
                store.write_batch(f"host-{n}", sequence, run.experiment_id, {
                    LOSS: SeriesColumns(steps, [s / 7 for s in steps], [10**18] * 100),
                    REWARD: SeriesColumns(steps[::3], [s * 3 for s in steps[::3]],
                                          list(range(0, 3400, 100))),
                })  # fmt: skip
        org_a = store.organization_id("a")
        first = runs[0].experiment_id
        events = [t.MetricCreateInput(client_event_id=f"e{i}", name="lr", value=i / 10, step=i)
                  for i in range(5)]  # fmt: skip
        store.ingest_json(org_a, first, events)
        store.create_annotation(org_a, first, t.AnnotationCreate("lr drop", {"step": 1}))
        store.create_ingestion_key(org_a, first, "dispatcher", 3_600_000)
        held = {
            "points": {run.experiment_id: list(store.points(run.experiment_id)) for run in runs},
            "events": _rows(store, "SELECT experiment_id, client_event_id FROM client_events"),
            "batches": _rows(
                store, "SELECT producer_id, sequence, accepted, duplicates FROM producer_batches"
            ),
        }
        with store.transaction() as conn:
            sqlite = isinstance(store, SqliteStore)
            for statement in (_BACK_TO_4_SQLITE if sqlite else _BACK_TO_4_POSTGRES).split(";"):
                conn.execute(statement)
    finally:
        store.close()
    return held


def _rows(store: Store, sql: str) -> list[tuple[object, ...]]:
    with store.reading() as conn:
        return sorted(tuple(row) for row in conn.execute(sql).fetchall())


def _migrates_losing_nothing(location: str) -> None:
    held = _fill(location)
    store = open_store(location)
    try:
        for experiment_id, points in held["points"].items():  # type: ignore[attr-defined]
            assert list(store.points(experiment_id)) == points
        assert (
            _rows(store, "SELECT experiment_id, client_event_id FROM client_events")
            == (held["events"])
        )
        batches = _rows(store, "SELECT producer_id, sequence, accepted, duplicates, "
                               "experiment_id FROM producer_batches")  # fmt: skip
        assert [b[:4] for b in batches] == held["batches"] and {b[4] for b in batches} == {0}
        with store.reading() as conn:  # every chunk knows its series' experiment
            assert (
                conn.execute(
                    "SELECT COUNT(*) FROM chunks c JOIN series s ON s.id = c.series_id "
                    "WHERE c.experiment_id <> s.experiment_id"
                ).fetchone()[0]
                == 0
            )
        run = store.find_run("a", "vision", "run-1")
        assert run is not None and run.points == 300 + 102 + 5
        # a batch recorded before is replayed, not applied; a client event id known is skipped
        again = store.write_batch("host-0", 1, run.experiment_id, {LOSS: SeriesColumns(
            [1000], [1.0], [0])})  # fmt: skip
        assert again == (WriteResult(accepted=134, duplicates=0), True)
        org_a = store.organization_id("a")
        answer = store.ingest_json(
            org_a,
            run.experiment_id,
            [t.MetricCreateInput(client_event_id="e3", name="lr", value=9.0, step=99)],
        )
        assert (answer.accepted, answer.duplicates) == (0, 1)
        # new batches: under the new key, and a point already stored is still stored once
        new = store.write_batch("host-0", 3, run.experiment_id, {LOSS: SeriesColumns(
            [299, 300], [0.0, 1.0], [0, 0])})  # fmt: skip
        assert new == (WriteResult(accepted=1, duplicates=1, duplicates_by_series={"loss": 1}),
                       False)  # fmt: skip
        assert store.find_run("a", "vision", "run-1").points == 408  # type: ignore[union-attr]
        notes = store.list_annotations(org_a, run.experiment_id, t.ListAnnotationsQuery())
        assert [n.annotation for n in notes] == ["lr drop"]
        assert len(store.list_ingestion_keys(org_a, run.experiment_id)) == 1
    finally:
        store.close()
    reopened = open_store(location)  # opening it again changes nothing
    assert reopened.find_run("a", "vision", "run-1").points == 408  # type: ignore[union-attr]
    reopened.close()


def test_a_schema_4_sqlite_store_migrates_losing_nothing(tmp_path: Path) -> None:
    location = str(tmp_path / "v4.db")
    _migrates_losing_nothing(location)
    with sqlite3.connect(location) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5


@pytest.mark.slow  # a PostgreSQL cluster is a process
def test_a_schema_4_postgresql_store_migrates_losing_nothing(pg_database: str) -> None:
    _migrates_losing_nothing(pg_database)
    store = open_store(pg_database)
    with store.reading() as conn:
        assert conn.execute("SELECT version FROM metrana_schema").fetchall() == [(5,)]
        keys = dict(conn.execute(
            "SELECT t.relname, string_agg(a.attname, ',' ORDER BY k.n) FROM pg_index i "
            "JOIN pg_class t ON t.oid = i.indrelid "
            "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
            "WHERE i.indisprimary GROUP BY t.relname"
        ).fetchall())  # fmt: skip
    store.close()
    assert keys["chunks"] == "experiment_id,series_id,first_step"
    assert keys["series"] == keys["annotations"] == "experiment_id,id"
    assert keys["producer_batches"] == "experiment_id,producer_id,sequence"
    assert keys["client_events"] == "experiment_id,client_event_id"
