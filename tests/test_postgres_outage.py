"""PostgreSQL down during ingestion: the server answers 503 (retryable) while it is, the
dispatcher spools past its retry budget and replays when the database is back, and the run
ends with every point stored once."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from conftest import init_over_http

import metrana
from metrana.api import Client
from metrana.api._routes import API_PREFIX
from metrana.dispatcher._spool import spool_root
from metrana.testing import PostgresCluster, serve_in_thread, stored_points, wait_until


def _stored_steps(client: Client) -> list[int]:
    experiments = client.list_experiments().experiments
    series = stored_points(client, experiments[0].id) if experiments else {}
    return sorted(step for points in series.values() for step, _ in points)


@pytest.mark.slow
def test_a_postgres_restart_during_ingestion_loses_nothing_and_stores_nothing_twice(
    pg_cluster: PostgresCluster, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_cluster.create_database()
    try:
        with serve_in_thread(url) as server, Client(server.api_key, host=server.url) as client:
            monkeypatch.setenv("METRANA_RETRY_MAX_ELAPSED", "0.5")
            monkeypatch.setenv("METRANA_RETRY_MAX_ATTEMPTS", "3")
            init_over_http(server, "pg-restart")
            for step in range(1_000):
                metrana.log("loss", float(step), step=step)
            metrana.flush(timeout=30)
            assert _stored_steps(client) == list(range(1_000))

            pg_cluster.stop("immediate")  # as if the database crashed
            try:
                down = httpx.get(
                    server.url + API_PREFIX + "/experiments",
                    headers={"Authorization": f"Bearer {server.api_key}"},
                    timeout=30,
                )
                assert down.status_code == 503, down.text
                assert down.headers["retry-after"] == "1"
                assert down.json()["error"]["details"] == "code=storage_unavailable"
                for step in range(1_000, 3_000):
                    metrana.log("loss", float(step), step=step)
                metrana.flush(timeout=90)  # acknowledged or spooled
                assert list(spool_root(isolated).glob("*/*.spool")), "nothing was spooled"
            finally:
                pg_cluster.start()
            for step in range(3_000, 3_500):
                metrana.log("loss", float(step), step=step)
            replayed = lambda: len(_stored_steps(client)) == 3_500  # noqa: E731
            wait_until(replayed, 90, message="the spool to replay", max_interval=0.2)
            emptied = lambda: not list(spool_root(isolated).glob("*/*.spool"))  # noqa: E731
            wait_until(emptied, 30, message="the spool to empty", max_interval=0.2)
            metrana.close(close_strategy="CompleteAll", timeout=30)
            assert _stored_steps(client) == list(range(3_500))
    finally:
        pg_cluster.drop_database(url)
