"""A store written before organizations (schema 2) opens with everything in it, reshaped; one
of schema 3 (before the dashboard's logins were rows) gains their tables, on both engines."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from metrana.api import _types as t
from metrana.server._serve import dashboard_principal
from metrana.server._sessions import Sessions
from metrana.storage import NotFoundError, SqliteStore, open_store
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
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
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
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
    assert reopened.find_run("team-a", "vision", "run-1") is not None
    assert reopened.runs()[0].experiment_id == run.experiment_id
    reopened.close()


@pytest.mark.slow  # a PostgreSQL cluster is a process
def test_a_schema_3_postgresql_store_gains_the_login_tables(
    pg_cluster: PostgresCluster,
) -> None:
    location = pg_cluster.create_database()
    try:
        open_store(location).close()
        _set_back_to_schema_3(location)
        _logins_work(location)
        store = open_store(location)
        with store.reading() as conn:
            assert conn.execute("SELECT version FROM metrana_schema").fetchall() == [(4,)]
        store.close()
    finally:
        pg_cluster.drop_database(location)
