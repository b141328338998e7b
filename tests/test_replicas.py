"""Stateless replicas: two ``metrana serve`` processes over one PostgreSQL database, behind a
round-robin balancer (``FaultProxy`` with two upstreams). A handshake, an ingestion and a
query of one run land on different replicas; a replica killed (SIGKILL) and restarted while a
job logs loses nothing and stores nothing twice; two hosts of one job (``METRANA_HOST_ID``),
each shipping to its own replica, end with the union of their points and one status, and so
do two hosts behind the balancer while one replica is killed and restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import kill_tree, wait_for_dispatchers_to_exit

import metrana
from metrana.api import Client
from metrana.api._routes import API_PREFIX, INGEST_PATH
from metrana.storage import open_store
from metrana.testing import FaultProxy, PostgresCluster, stored_points, wait_until

SERVING = "Metrana server on"


class Replica:
    """``metrana serve --store URL`` in its own process, on a free loopback port (kept
    across restarts, as a load balancer's upstream list)."""

    def __init__(self, store: str, log: Path) -> None:
        self.store = store
        self.log = log
        self.port = 0
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the replica and wait until it listens."""
        command = [sys.executable, "-m", "metrana.cli", "serve", "--store", self.store,
                   "--port", str(self.port)]  # fmt: skip
        with open(self.log, "a") as errors:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=errors, text=True
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith(SERVING), f"replica did not start: {line!r} {self.log.read_text()}"
        self.port = int(line.split()[3].rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL, by pid, as a crash; reaped."""
        assert self.process is not None
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait(10)
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            kill_tree(self.process.pid)
            self.process.wait(10)
        self._close_pipe()


@pytest.fixture
def database(pg_cluster: PostgresCluster) -> Iterator[tuple[str, str]]:
    """A fresh database of the session's cluster and an API key of its ``default``
    organization."""
    url = pg_cluster.create_database()
    store = open_store(url)
    _, api_key = store.create_api_key("default", "replicas")
    store.close()
    try:
        yield url, api_key
    finally:
        pg_cluster.drop_database(url)


@pytest.fixture
def replicas(database: tuple[str, str], tmp_path: Path) -> Iterator[list[Replica]]:
    """Two replicas over the database, started; stopped by pid at the end."""
    started = [Replica(database[0], tmp_path / f"replica-{i}.log") for i in range(2)]
    try:
        for replica in started:
            replica.start()
        yield started
    finally:
        for replica in started:
            replica.stop()


def _only_experiment(client: Client) -> str:
    experiments = client.list_experiments().experiments
    assert len(experiments) == 1, experiments
    return experiments[0].id


def _init(api_key: str, url: str, run_name: str) -> None:
    metrana.init(api_key=api_key, workspace_name="default", project_name="proj",
                 run_name=run_name, ingestion_url=url)  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_handshake_ingestion_and_queries_land_on_different_replicas(
    database: tuple[str, str], replicas: list[Replica]
) -> None:
    _, api_key = database
    with FaultProxy([r.url for r in replicas]) as balancer:
        _init(api_key, balancer.url, "rr")
        for chunk in range(6):
            for step in range(chunk * 500, (chunk + 1) * 500):
                metrana.log("loss", float(step), step=step)
                metrana.log("acc", step * 1e-3, step=step)
            metrana.flush(timeout=30)  # one ingestion (at least) per chunk
        metrana.close(close_strategy="CompleteAll", timeout=30)
        wait_for_dispatchers_to_exit()  # having marked the run done
        served = [(r.path, r.extra.get("upstream")) for r in balancer.requests]
    handshakes = {up for path, up in served if path.endswith("/runs/handshake")}
    ingested = {up for path, up in served if path == API_PREFIX + INGEST_PATH}
    assert len(handshakes) == 1, served
    assert ingested == {r.url for r in replicas}, served  # the other replica ingested too
    answers = []
    for replica in replicas:  # a query on either replica: the same answer, byte for byte
        with Client(api_key, host=replica.url) as client:
            experiment = _only_experiment(client)
            assert client.get_experiment(experiment).experiment.status == "done"
            points = stored_points(client, experiment)
            assert {name: len(p) for (name, _), p in points.items()} == {"acc": 3000, "loss": 3000}
            assert [s for s, _ in points[("loss", "{}")]] == list(range(3000))
        answers.append(httpx.get(
            f"{replica.url}{API_PREFIX}/experiments/{experiment}/metrics",
            params={"metric_name": "loss", "limit": 1000},
            headers={"Authorization": f"Bearer {api_key}"}, timeout=30,
        ).content)  # fmt: skip
    assert answers[0] == answers[1]


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_replica_killed_and_restarted_mid_run_loses_nothing_and_stores_nothing_twice(
    database: tuple[str, str], replicas: list[Replica], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, api_key = database
    monkeypatch.setenv("METRANA_RETRY_MAX_ELAPSED", "60")
    total = 30_000
    with FaultProxy([r.url for r in replicas]) as balancer:
        _init(api_key, balancer.url, "kill-replica")
        restarted_at = 0
        for chunk in range(30):
            if chunk == 10:  # frozen, it holds the requests it takes; killed, it cuts them
                os.kill(replicas[1].pid, signal.SIGSTOP)
            if chunk == 13:
                _await_held(balancer, replicas[1].url)
                replicas[1].kill()
            if chunk == 20:
                replicas[1].start()  # on the same port: the balancer sends to it again
                restarted_at = len(balancer.requests)
            for step in range(chunk * 1000, (chunk + 1) * 1000):
                metrana.log("loss", float(step), step=step)
            time.sleep(0.03)
        metrana.close(close_strategy="CompleteAll", timeout=60)
        wait_for_dispatchers_to_exit()
        statuses = [(r.status, r.extra.get("upstream")) for r in balancer.requests]
    assert (502, replicas[1].url) in statuses  # a batch was cut on the killed replica
    assert (200, replicas[1].url) in statuses[restarted_at:]  # the restarted one took batches
    with Client(api_key, host=replicas[0].url) as client:
        experiment = _only_experiment(client)
        assert client.get_experiment(experiment).experiment.status == "done"
        steps = [s for s, _ in stored_points(client, experiment)[("loss", "{}")]]
    assert steps == list(range(total))  # every point once: none lost, none twice


HOST_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import metrana
    parity, steps, pause = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    metrana.init(workspace_name="default", project_name="proj", run_name="torchrun-job")
    for step in range(parity, steps, 2):
        metrana.log("loss", float(step), step=step)  # one series, half of its steps each
        metrana.log("grad_norm", 1.0, step=step // 2, labels={"host": str(parity)})
        if step % 400 < 2:
            time.sleep(pause)
    metrana.close(close_strategy="CompleteAll", timeout=60)
    """
)


def _start_hosts(
    tmp_path: Path, api_key: str, urls: list[str], steps: int, pause: float
) -> list[subprocess.Popen[str]]:
    """Two hosts of one job (``METRANA_HOST_ID`` node-0 and node-1), host ``i`` shipping to
    ``urls[i]``, each logging every other step of ``loss`` up to ``steps`` and its own
    ``grad_norm``, pausing ``pause`` s every 400 steps."""
    script = tmp_path / "host.py"
    script.write_text(HOST_SCRIPT)
    hosts: list[subprocess.Popen[str]] = []
    try:
        for parity, url in enumerate(urls):
            env = dict(os.environ, METRANA_HOST_ID=f"node-{parity}", METRANA_API_KEY=api_key,
                       METRANA_INGESTION_URL=url)  # fmt: skip
            command = [sys.executable, str(script), str(parity), str(steps), str(pause)]
            hosts.append(
                subprocess.Popen(
                    command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            )
    except BaseException:
        for host in hosts:  # the ones already started
            kill_tree(host.pid)
        raise
    return hosts


def _await_held(balancer: FaultProxy, url: str) -> None:
    """Wait until the (frozen) replica at ``url`` holds a request the balancer sent it."""
    wait_until(lambda: balancer.in_flight[url] >= 1, 30, message=f"a request held by {url}")


def _wait_for_hosts(hosts: list[subprocess.Popen[str]]) -> None:
    """Each host ends well, and its dispatcher leaves (marking the run done); any host still
    running at the end is killed by pid."""
    try:
        for host in hosts:
            _, err = host.communicate(timeout=60)
            assert host.returncode == 0, err
    finally:
        for host in hosts:
            if host.poll() is None:
                kill_tree(host.pid)
    wait_for_dispatchers_to_exit()


def _the_union_once(database: tuple[str, str], query_url: str, steps: int) -> None:
    """One run, ``done``, holding each host's points exactly once, from two producers."""
    url, api_key = database
    with Client(api_key, host=query_url) as client:
        experiment = _only_experiment(client)  # one run, not one per host
        assert client.get_experiment(experiment).experiment.status == "done"
        points = stored_points(client, experiment)
    assert [s for s, _ in points[("loss", "{}")]] == list(range(steps))
    for parity in range(2):
        grad = points[("grad_norm", f'{{"host":"{parity}"}}')]
        assert [s for s, _ in grad] == list(range(steps // 2))
    # two dispatchers, one per host, each named by its METRANA_HOST_ID
    import psycopg

    with psycopg.connect(url) as conn:
        producers = {row[0].split("-")[1] for row in conn.execute(
            "SELECT DISTINCT producer_id FROM producer_batches"
        )}  # fmt: skip
    assert producers == {"0", "1"}, producers


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_two_hosts_of_one_job_each_on_its_replica_store_the_union_once(
    database: tuple[str, str], replicas: list[Replica], tmp_path: Path
) -> None:
    hosts = _start_hosts(tmp_path, database[1], [r.url for r in replicas], 4000, 0.05)
    _wait_for_hosts(hosts)
    _the_union_once(database, replicas[1].url, 4000)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_two_hosts_behind_the_balancer_with_a_replica_killed_and_restarted_store_it_once(
    database: tuple[str, str], replicas: list[Replica], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("METRANA_RETRY_MAX_ELAPSED", "30")
    steps = 12_000
    with FaultProxy([r.url for r in replicas]) as balancer:
        hosts = _start_hosts(tmp_path, database[1], [balancer.url] * 2, steps, 0.08)

        def ingested() -> int:
            return sum(r.path == API_PREFIX + INGEST_PATH for r in balancer.requests)

        try:
            wait_until(lambda: ingested() >= 4, 30, message="both hosts ingesting")
            stopped_at = len(balancer.requests)
            os.kill(replicas[1].pid, signal.SIGSTOP)  # frozen, it holds the requests it takes
            _await_held(balancer, replicas[1].url)
            replicas[1].kill()  # SIGKILL by pid, mid-run: the requests it held are cut
            mark = ingested()
            wait_until(lambda: ingested() >= mark + 4, 30, message="ingesting on one replica")
            replicas[1].start()  # on the same port: the balancer sends to it again
            restarted_at, mark = len(balancer.requests), ingested()
            assert [host.poll() for host in hosts] == [None, None]  # the job still logs
            wait_until(lambda: ingested() >= mark + 4, 30, message="ingesting on both again")
        except BaseException:
            for host in hosts:
                kill_tree(host.pid)
            raise
        _wait_for_hosts(hosts)
        served = [(r.status, r.extra.get("upstream"), r.path == API_PREFIX + INGEST_PATH)
                  for r in balancer.requests]  # fmt: skip
    assert (502, replicas[1].url, True) in served[stopped_at:restarted_at]  # a batch was cut
    assert (200, replicas[1].url, True) in served[restarted_at:]  # the restarted one took some
    _the_union_once(database, replicas[0].url, steps)
