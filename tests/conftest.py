"""Every test gets its own METRANA_HOME, session root and orchestration id, and every process a
test starts (dispatchers included) is killed by pid when it ends. A test that starts a process
(a subprocess, a multiprocessing worker, a fork, a dispatcher) must be marked ``slow``, so that
``pytest -m "not slow"`` stays an inner loop of seconds: the ``only_slow_tests_start_processes``
fixture fails one that is not."""

from __future__ import annotations

import asyncio
import multiprocessing.process
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest

import metrana
from metrana.api import Client
from metrana.session import live_dispatchers
from metrana.testing import (
    PostgresCluster,
    RunningServer,
    postgres_cluster,
    reset,
    serve_in_thread,
    wait_until,
)
from metrana.writer._run import current_writer

ORCHESTRATION_VARIABLES = ("METRANA_ORCHESTRATION_ID", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID")


_started: list[str] = []
_current_test: list[str] = []  # the node id of a running test that is not marked slow


def _note_process(what: str) -> None:
    _started.append(what)
    if _current_test:
        pytest.fail(_unmarked(_current_test[0], what), pytrace=False)


def _unmarked(nodeid: str, what: str) -> str:
    return (
        f"{nodeid} started a process ({what}) but is not marked @pytest.mark.slow: "
        "mark it, or use metrana.testing.InProcessSession"
    )


_popen_init = subprocess.Popen.__init__


def _noting_popen_init(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
    _note_process(f"subprocess {args[0] if args else kwargs.get('args')!r}")
    _popen_init(self, *args, **kwargs)


subprocess.Popen.__init__ = _noting_popen_init  # type: ignore[method-assign]
_process_start = multiprocessing.process.BaseProcess.start


def _noting_process_start(self: multiprocessing.process.BaseProcess) -> None:
    _note_process(f"multiprocessing {self.name}")
    _process_start(self)


multiprocessing.process.BaseProcess.start = _noting_process_start  # type: ignore[method-assign]
os.register_at_fork(before=lambda: _started.append("os.fork"))


@pytest.fixture(autouse=True)
def only_slow_tests_start_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    _started.clear()
    unmarked = request.node.get_closest_marker("slow") is None
    if unmarked:
        _current_test.append(request.node.nodeid)
    try:
        yield
    finally:
        _current_test.clear()
    if _started and unmarked:
        pytest.fail(_unmarked(request.node.nodeid, _started[0]), pytrace=False)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith("METRANA_") or name in ORCHESTRATION_VARIABLES:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else tmp_path
    session_root = shm / f"metrana-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("METRANA_HOME", str(home))
    monkeypatch.setenv("METRANA_SESSION_ROOT", str(session_root))
    monkeypatch.setenv("METRANA_ORCHESTRATION_ID", uuid.uuid4().hex)
    yield home
    reset()
    kill_dispatchers(session_root)
    shutil.rmtree(session_root, ignore_errors=True)


# The engines of the suites that prove the storage semantics and the REST answers
# (test_storage, test_server, test_conformance): a module overrides the ``engine`` fixture
# with ``params=ENGINES``. PostgreSQL starts a cluster, a process: its cases are slow.
ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster for the whole session, started by the first test that
    needs it (a slow one); stopped and removed at the end."""
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture
def engine() -> str:
    """The engine of ``store_location`` (and ``live_server``): SQLite, unless the module
    overrides this fixture with ``params=ENGINES``."""
    return "sqlite"


def new_store_location(engine: str, directory: Path, request: pytest.FixtureRequest) -> str:
    """A fresh store of ``engine``: a SQLite file in ``directory``, or a new database of the
    session's cluster (dropped when the requesting fixture's scope ends)."""
    if engine == "sqlite":
        return str(directory / "server.sqlite")
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    request.addfinalizer(lambda: cluster.drop_database(url))
    return url


@pytest.fixture
def store_location(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where a test's fresh store is: a SQLite file or a ``postgresql://`` URL."""
    return new_store_location(engine, tmp_path, request)


@pytest.fixture
def live_server(store_location: str) -> Iterator[RunningServer]:
    """A real server on 127.0.0.1 and a free port, over its own store."""
    with serve_in_thread(store_location) as server:
        yield server


def server_env(server: RunningServer) -> dict[str, str]:
    """The environment that points a job at ``server`` over HTTP."""
    return {"METRANA_INGESTION_URL": server.url, "METRANA_API_KEY": server.api_key}


def init_over_http(
    server: RunningServer, run_name: str, url: str | None = None, **kwargs: Any
) -> None:
    """``metrana.init()`` of ``run_name`` in the server's ``default`` workspace, project
    ``proj``, delivered over HTTP to ``url`` (a proxy in front of the server) or the server;
    ``kwargs``: more arguments of ``init()``."""
    metrana.init(
        api_key=server.api_key,
        workspace_name="default",
        project_name="proj",
        run_name=run_name,
        ingestion_url=url or server.url,
        **kwargs,
    )


def target_server(target: str, request: pytest.FixtureRequest) -> RunningServer | None:
    """For a test parametrized over ``"embedded"`` and ``"http"``: the live server of the
    http case (None for the embedded store)."""
    if target == "embedded":
        return None
    server: RunningServer = request.getfixturevalue("live_server")
    return server


@pytest.fixture(params=["sync", "async"])
def flavor(request: pytest.FixtureRequest) -> str:
    """Which REST client a test drives: ``Client``, then (second run) ``AsyncClient``."""
    return str(request.param)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Waits between retries, recorded instead of slept (blocking and asyncio alike)."""
    recorded: list[float] = []

    async def asleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(time, "sleep", recorded.append)
    monkeypatch.setattr(asyncio, "sleep", asleep)
    return recorded


@pytest.fixture
def client(live_server: RunningServer) -> Iterator[Client]:
    with Client(live_server.api_key, host=live_server.url) as api:
        yield api


def dispatcher_pids(session_root: Path) -> list[int]:
    """Live dispatchers of the sessions under ``session_root`` (by pid and create time)."""
    return live_dispatchers(session_root)


def need(module: str, extra: str = "examples") -> None:
    """Skip a test whose test-only extra is not installed, except under CI, which installs
    every extra: a missing package fails loudly there."""
    if os.environ.get("CI"):
        __import__(module)
    else:
        pytest.importorskip(module, reason=f"pip install -e '.[{extra}]'")


def wait_for_dispatchers_to_exit(timeout: float = 30) -> None:
    """The dispatcher leaves by itself once every writer has closed or died and all is stored."""
    session_root = Path(os.environ["METRANA_SESSION_ROOT"])
    wait_until(
        lambda: not dispatcher_pids(session_root),
        timeout,
        message="the dispatcher exited after the job",
    )


def kill_dispatchers(session_root: Path) -> None:
    for pid in dispatcher_pids(session_root):
        if pid == os.getpid():
            continue  # an in-process dispatcher (metrana.testing.InProcessSession)
        try:
            os.kill(pid, signal.SIGKILL)
            psutil.Process(pid).wait(5)
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.TimeoutExpired):
            pass


@contextmanager
def dispatcher_stopped() -> Iterator[None]:
    """Freeze the session's dispatcher (SIGSTOP) so that nothing drains the rings."""
    writer = current_writer()
    assert writer is not None
    info = writer.session.read_info()
    assert info is not None
    os.kill(info.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(info.pid, signal.SIGCONT)


def kill_writer_after_logging(script: Path, *args: str) -> int:
    """Run a writer ``script`` (with ``args``) that prints its dispatcher's pid, logs once it
    reads a line, prints a count and waits: stop the dispatcher while it logs, SIGKILL the
    writer, let the dispatcher go on and wait until it has drained and removed the dead ring.
    Returns the count the writer printed."""
    dispatcher = 0
    with subprocess.Popen(
        [sys.executable, str(script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as writer:
        try:
            assert writer.stdin is not None and writer.stdout is not None
            dispatcher = int(writer.stdout.readline())
            os.kill(dispatcher, signal.SIGSTOP)  # nothing is drained until the writer is dead
            writer.stdin.write("go\n")
            writer.stdin.flush()
            count = int(writer.stdout.readline())
            writer.kill()
            writer.wait(10)
            session_root = Path(os.environ["METRANA_SESSION_ROOT"])
            # the dead writer's ring is there
            assert len(list(session_root.glob("*/w-*.meta"))) == 1
        finally:
            if dispatcher:
                os.kill(dispatcher, signal.SIGCONT)
            kill_tree(writer.pid)
    # the dispatcher deletes the ring once it has stored all of it
    wait_until(lambda: not list(session_root.glob("*/w-*.meta")), 30, message="ring drained")
    return count


def run_python(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` with the test's environment; kill its whole tree on timeout."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    process = subprocess.Popen(
        [sys.executable, *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(process.pid)
        out, err = process.communicate()
        raise AssertionError(
            f"child timed out after {timeout} s\nstdout:{out}\nstderr:{err}"
        ) from None
    finally:
        if process.poll() is None:  # once reaped, its pid may belong to another process
            kill_tree(process.pid)
    result = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    if check and process.returncode != 0:
        raise AssertionError(f"child failed ({process.returncode})\nstdout:{out}\nstderr:{err}")
    return result


def kill_tree(pid: int) -> None:
    try:
        parent = psutil.Process(pid)
        children = parent.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for process in [*children, parent]:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs([*children, parent], timeout=5)


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``metrana ARGS`` with the test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "metrana.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def store_path() -> Path:
    return Path(os.environ["METRANA_HOME"]) / "store.sqlite"


def export_points(workspace: str, project: str, run: str) -> list[dict[str, object]]:
    """Every stored point of a run, through ``metrana export``."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "metrana.cli",
            "export",
            "--workspace",
            workspace,
            "--project",
            project,
            "--run",
            run,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [msgspec.json.decode(line) for line in result.stdout.splitlines()]
