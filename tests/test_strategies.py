"""Every value of every strategy, proven with several writer processes shipping over HTTP through
the fault-injecting proxy to a live server.

Each test starts a *job*: one Python process that forks its ranks, each running a list of steps
(init, log, flush, close, signal, wait, ...) and writing what happened (what log() and close()
returned or raised, how long they took, stats(), every record of the ``metrana`` logger) to a
result file. The test drives faults at the proxy and talks to the ranks through files in a
control directory, so nothing is synchronised by sleeping.

The argument path and the variable path are both exercised in every test: rank 0 gets the value
under test as an ``init()`` argument while its environment variable names another value (the
argument must win), rank 1 gets it from the variable alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import kill_tree

import metrana
from metrana.api import Client
from metrana.api._routes import API_PREFIX, INGEST_PATH
from metrana.session import ErrorPublisher, Session, process_alive, session_stats
from metrana.testing import Fault, FaultProxy, RunningServer, stored_points
from metrana.writer import _run

INGEST = API_PREFIX + INGEST_PATH
DEAD_URL = "http://127.0.0.1:9"  # the discard port: nothing listens

Step = tuple[str, Any]
Result = dict[str, Any]

# The job: fork one process per rank; each runs its steps and writes result.<rank>.json.
JOB = r'''
import json
import logging
import os
import sys
import time
import traceback

import msgspec

import metrana
from metrana.writer import _run

SPEC = json.loads(open(sys.argv[1]).read())
CONTROL = SPEC["control"]


def path(name):
    return os.path.join(CONTROL, name)


def wait_for(name, count=0, timeout=30.0):
    """The file `name`, or `count` files `name.<rank>`, exist."""
    deadline = time.monotonic() + timeout
    while True:
        if count:
            if sum(f.rsplit(".", 1)[0] == name for f in os.listdir(CONTROL)) >= count:
                return
        elif os.path.exists(path(name)):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {name!r}")
        time.sleep(0.005)


def touch(name):
    open(path(name), "w").close()


class Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append([record.levelname, record.getMessage()])


def error_of(error):
    return {
        "type": type(error).__name__,
        "message": str(error),
        "pending": getattr(error, "pending", None),
    }


def run(rank, steps, out):
    labels = {"rank": str(rank)}
    for kind, arg in steps:
        if kind == "env":
            os.environ.update(arg)
        elif kind == "init":
            kwargs = {"workspace_name": "default", "project_name": "strategies",
                      "run_name": SPEC["run"], **arg}
            try:
                metrana.init(**kwargs)
            except metrana.MetranaError as error:
                out["init_error"] = error_of(error)
                return
            out["level"] = logging.getLogger("metrana").getEffectiveLevel()
        elif kind in ("log", "until"):
            done = {"ok": 0, "errors": [], "start": time.monotonic()}
            i = 0
            while (i < arg["n"]) if kind == "log" else not os.path.exists(path(arg["stop"])):
                started = time.monotonic()
                try:
                    metrana.log("loss", float(i), labels=labels)
                except metrana.MetranaError as error:
                    done["errors"].append(
                        {"index": i, "seconds": time.monotonic() - started, **error_of(error)}
                    )
                    if arg.get("stop_on_error"):
                        break
                else:
                    done["ok"] += 1
                i += 1
                if kind == "until":
                    time.sleep(arg["every"])  # the pace of the workload, not a synchronisation
            done["end"] = time.monotonic()
            out.setdefault("log", []).append(done)
        elif kind == "flush":
            metrana.flush(timeout=arg)
        elif kind == "stats":
            out.setdefault("stats", []).append(msgspec.to_builtins(metrana.stats().process))
        elif kind == "signal":
            touch(f"{arg}.{rank}")
        elif kind == "barrier":
            touch(f"{arg['name']}.{rank}")
            wait_for(arg["name"], count=arg["count"])
        elif kind == "wait":
            wait_for(arg)
        elif kind == "wait_errors":  # until this writer noticed `arg` delivery errors
            deadline = time.monotonic() + 10
            while len(_run.current_writer().delivery_errors) < arg:
                if time.monotonic() > deadline:
                    raise TimeoutError("no delivery error noticed within 10 s")
                time.sleep(0.005)
        elif kind == "probe":
            logger = logging.getLogger("metrana")
            for level in (5, 10, 20, 25, 30, 40, 50):
                logger.log(level, "probe %d", level)
        elif kind == "close":
            result = {"start": time.monotonic()}
            try:
                result["returned"] = metrana.close(**arg)
            except metrana.MetranaError as error:
                result["error"] = error_of(error)
            result["end"] = time.monotonic()
            result["seconds"] = result["end"] - result["start"]
            out["close"] = result
        else:
            raise ValueError(kind)


def main():
    children = {}
    for rank, steps in enumerate(SPEC["ranks"]):
        pid = os.fork()
        if pid == 0:
            code = 0
            out = {"rank": rank}
            capture = Capture()
            logging.getLogger("metrana").addHandler(capture)
            try:
                run(rank, steps, out)
            except BaseException:
                out["crash"] = traceback.format_exc()
                code = 1
            out["records"] = capture.lines
            with open(path(f"result.{rank}.json"), "w") as handle:
                json.dump(out, handle)
            os._exit(code)
        children[pid] = rank
    failed = [rank for pid, rank in children.items() if os.waitpid(pid, 0)[1] != 0]
    sys.exit(f"ranks {failed} failed" if failed else 0)


main()
'''


class Job:
    """A job of forked ranks, started at once; every wait is bounded."""

    def __init__(self, directory: Path, ranks: list[list[Step]], env: dict[str, str], run: str):
        self.dir = directory
        self.control = directory / "control"
        self.control.mkdir(parents=True)
        self.ranks = ranks
        spec = directory / "spec.json"
        spec.write_text(json.dumps({"control": str(self.control), "run": run, "ranks": ranks}))
        script = directory / "job.py"
        script.write_text(JOB)
        self.output = directory / "job.out"
        with open(self.output, "w") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(script), str(spec)],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def _diagnose(self) -> str:
        parts = [f"job output:\n{self.output.read_text()}"]
        for result in self._results(missing_ok=True):
            parts.append(f"rank {result.get('rank')}: {json.dumps(result)[:3000]}")
        return "\n".join(parts)

    def wait(self, name: str, count: int = 0, timeout: float = 30.0) -> None:
        """Until the ranks signalled ``name`` (``count`` of them) or wrote the file ``name``."""
        deadline = time.monotonic() + timeout
        while True:
            files = [f.name for f in self.control.iterdir()]
            if count and sum(f.rsplit(".", 1)[0] == name for f in files) >= count:
                return
            if not count and name in files:
                return
            if self.process.poll() is not None:
                raise AssertionError(f"the job ended before {name!r}\n{self._diagnose()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"no {name!r} within {timeout} s\n{self._diagnose()}")
            time.sleep(0.005)

    def signal(self, name: str) -> None:
        (self.control / name).touch()

    def finish(self, timeout: float = 30.0) -> list[Result]:
        """Wait for the job (killing its tree after ``timeout``); every rank's result."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"job timed out after {timeout} s\n{self._diagnose()}") from None
        results = self._results()
        if self.process.returncode != 0 or any("crash" in r for r in results):
            raise AssertionError(f"job failed ({self.process.returncode})\n{self._diagnose()}")
        return results

    def _results(self, missing_ok: bool = False) -> list[Result]:
        results = []
        for rank in range(len(self.ranks)):
            path = self.control / f"result.{rank}.json"
            if path.exists():
                results.append(json.loads(path.read_text()))
            elif not missing_ok:
                raise AssertionError(f"rank {rank} left no result\n{self._diagnose()}")
        return results

    def kill(self) -> None:
        kill_tree(self.process.pid)
        self.process.wait(5)


class CountingProxy(FaultProxy):
    """The fault proxy, also measuring how many ingest requests it holds at once."""

    def __init__(self, upstream: str) -> None:
        self._count_lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0
        self.arrived = 0
        super().__init__(upstream)

    def _take_fault(self, path: str) -> Fault | None:
        if path.startswith(INGEST):
            with self._count_lock:
                self.arrived += 1
                self.inflight += 1
                self.max_inflight = max(self.max_inflight, self.inflight)
        return super()._take_fault(path)

    def _record(
        self, at: float, method: str, path: str, status: int, fault: str, upstream: str = ""
    ) -> None:
        if path.startswith(INGEST):
            with self._count_lock:
                self.inflight -= 1
        super()._record(at, method, path, status, fault, upstream)

    def ingests(self) -> list[Any]:
        return [r for r in self.requests if r.path.startswith(INGEST)]


# -- fixtures and helpers ---------------------------------------------------------------------


def _session_root() -> Path:
    return Path(os.environ["METRANA_SESSION_ROOT"])


@pytest.fixture
def proxies(live_server: RunningServer) -> Iterator[Callable[[], CountingProxy]]:
    made: list[CountingProxy] = []

    def make() -> CountingProxy:
        made.append(CountingProxy(live_server.url))
        return made[-1]

    yield make
    for _, session in all_sessions():  # no client is left waiting on a stalled request
        kill_dispatcher(session)
    closing = [threading.Thread(target=proxy.close) for proxy in made]
    for thread in closing:
        thread.start()
    for thread in closing:
        thread.join(10)


@pytest.fixture
def proxy(proxies: Callable[[], CountingProxy]) -> CountingProxy:
    return proxies()


@pytest.fixture
def base_env(live_server: RunningServer, proxy: CountingProxy) -> dict[str, str]:
    return {
        "METRANA_INGESTION_URL": proxy.url,
        "METRANA_API_KEY": live_server.api_key,
        "METRANA_RETRY_MAX_ATTEMPTS": "3",
        "METRANA_RETRY_MAX_ELAPSED": "5",
        "METRANA_INIT_TIMEOUT": "20",
    }


StartJob = Callable[..., Job]


@pytest.fixture
def start_job(tmp_path: Path, base_env: dict[str, str]) -> Iterator[StartJob]:
    jobs: list[Job] = []

    def start(ranks: list[list[Step]], run: str = "run", env: dict[str, str] | None = None) -> Job:
        job = Job(tmp_path / f"job{len(jobs)}", ranks, {**base_env, **(env or {})}, run)
        jobs.append(job)
        return job

    yield start
    for job in jobs:
        job.kill()


def setting(rank: int, argument: str, variable: str, value: str, other: str) -> list[Step]:
    """Rank 0: ``value`` by argument, ``other`` in the variable. Rank 1: ``value`` by variable."""
    if rank % 2 == 0:
        return [("env", {variable: other}), ("init", {argument: value})]
    return [("env", {variable: value}), ("init", {})]


def merge_init(steps: list[Step], **extra: Any) -> list[Step]:
    return [(kind, {**arg, **extra}) if kind == "init" else (kind, arg) for kind, arg in steps]


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def all_sessions() -> list[tuple[dict[str, Any], Session]]:
    """Every session of this test, with its configuration."""
    root = _session_root()
    found = []
    for directory in sorted(root.iterdir()) if root.exists() else []:
        config = directory / "config.json"
        if config.exists():
            found.append((json.loads(config.read_text()), Session(directory)))
    return found


def sessions(orchestration_id: str | None = None) -> dict[str, Session]:
    """The sessions of this test (of one orchestration id) by run name."""
    return {
        config["run"]["run_name"]: session
        for config, session in all_sessions()
        if orchestration_id in (None, config["orchestration_id"])
    }


def the_session(run: str = "run", orchestration_id: str | None = None) -> Session:
    wait_until(lambda: run in sessions(orchestration_id), f"the session of {run!r}")
    return sessions(orchestration_id)[run]


def kill_dispatcher(session: Session) -> int:
    """Kill the session's dispatcher if it is alive; its pid (0 if it never started).

    Dead means dead or a zombie: an orphan's zombie may wait a while for its reaper."""
    info = session.read_info()
    if info is None:
        return 0
    if process_alive(info.pid, info.create_ms):
        os.kill(info.pid, signal.SIGKILL)
        wait_until(lambda: not process_alive(info.pid, info.create_ms), "the dispatcher to die")
    return info.pid


def stored(client: Client, run: str = "run") -> dict[str, list[int]]:
    """Steps stored on the server per rank label."""
    experiments = [e for e in client.list_experiments().experiments if e.slug == run]
    if not experiments:
        return {}
    (experiment,) = experiments
    return {
        json.loads(labels)["rank"]: [step for step, _ in points]
        for (_, labels), points in stored_points(client, experiment.id).items()
    }


def lines(result: Result, level: str | None = None, containing: str = "") -> list[str]:
    """What the rank's ``metrana`` logger emitted (at ``level``, containing some text)."""
    return [
        message
        for name, message in result["records"]
        if (level is None or name == level) and containing in message
    ]


def no_errors(result: Result) -> bool:
    return all(not step["errors"] for step in result["log"])


def closed_cleanly(result: Result) -> bool:
    return "error" not in result["close"] and result["close"]["returned"] is None


# -- backpressure ----------------------------------------------------------------------------


@pytest.mark.slow
def test_drop_new_drops_and_counts_exactly_what_did_not_fit(
    start_job: StartJob, proxy: CountingProxy, client: Client
) -> None:
    proxy.set_fault(Fault.stall(path_prefix=INGEST))  # nothing is acknowledged: rings fill up
    ranks = []
    for rank in range(2):
        steps = setting(
            rank, "backpressure_strategy", "METRANA_BACKPRESSURE_STRATEGY", "DropNew", "Raise"
        )
        if rank == 0:  # and the target, by argument over a variable naming a dead port
            steps[0][1]["METRANA_INGESTION_URL"] = DEAD_URL
            steps = merge_init(steps, ingestion_url=proxy.url)
        ranks.append(
            [
                *steps,
                ("log", {"n": 50}),
                ("stats", None),
                ("signal", "logged"),
                ("wait", "go"),
                ("close", {"close_strategy": "CompleteAll", "timeout": 20}),
            ]
        )
    job = start_job(ranks, env={"METRANA_EVENT_QUEUE_MAX_SIZE": "20"})
    job.wait("logged", count=2)
    proxy.set_fault(None)
    job.signal("go")
    results = job.finish()

    for result in results:
        assert result["log"][0]["ok"] == 50 and no_errors(result)  # log() never raised
        stats = result["stats"][0]
        # 20 records: the series declaration and 19 points; 31 points dropped and counted
        assert (stats["logged"], stats["dropped_queue_full"], stats["pending"]) == (19, 31, 19)
        assert lines(result, "WARNING", "event queue full") == [
            "event queue full (20 events): dropping new points (backpressure DropNew); "
            "drops are counted in metrana.stats()"
        ]
        assert closed_cleanly(result)
    assert stored(client) == {"0": list(range(19)), "1": list(range(19))}


@pytest.mark.slow
def test_block_waits_for_room_and_a_dead_dispatcher_is_replaced(
    start_job: StartJob, proxy: CountingProxy, client: Client
) -> None:
    proxy.set_fault(Fault.stall(path_prefix=INGEST))
    ranks = [
        [
            *setting(
                rank, "backpressure_strategy", "METRANA_BACKPRESSURE_STRATEGY", "Block", "DropNew"
            ),
            ("log", {"n": 50}),
            ("stats", None),
            ("close", {"close_strategy": "CompleteAll", "timeout": 20}),
        ]
        for rank in range(2)
    ]
    job = start_job(ranks, env={"METRANA_EVENT_QUEUE_MAX_SIZE": "20"})
    session = the_session()
    wait_until(
        lambda: sorted(w.logged for w in session_stats(session.dir).writers) == [19, 19],
        "both rings to fill up",
    )
    # Both ranks are blocked in log(). Kill the dispatcher; the writers must start another.
    old_pid = kill_dispatcher(session)
    assert old_pid
    released = time.monotonic()
    proxy.set_fault(None)
    results = job.finish()

    info = session.read_info()
    assert info is not None and info.pid != old_pid
    for result in results:
        assert result["log"][0]["ok"] == 50 and no_errors(result)
        assert result["log"][0]["end"] > released  # it waited for room
        stats = result["stats"][0]
        assert (stats["logged"], stats["dropped_queue_full"]) == (50, 0)
        assert closed_cleanly(result)
    restarts = [line for r in results for line in lines(r, "WARNING", "started a new one")]
    assert restarts == [f"the dispatcher was not running; started a new one (pid {info.pid})"]
    assert stored(client) == {"0": list(range(50)), "1": list(range(50))}


@pytest.mark.slow
def test_block_raises_after_the_block_timeout(
    start_job: StartJob, proxy: CountingProxy, client: Client
) -> None:
    proxy.set_fault(Fault.stall(path_prefix=INGEST))  # never released: the ring stays full
    ranks = [
        [
            *setting(
                rank, "backpressure_strategy", "METRANA_BACKPRESSURE_STRATEGY", "Block", "Raise"
            ),
            ("log", {"n": 20, "stop_on_error": True}),
            ("stats", None),
            ("close", {"close_strategy": "Immediate"}),
        ]
        for rank in range(2)
    ]
    env = {"METRANA_EVENT_QUEUE_MAX_SIZE": "10", "METRANA_BLOCK_TIMEOUT": "1"}
    results = start_job(ranks, env=env).finish()

    log_path = the_session().log_path
    for result in results:
        ((error,),) = [step["errors"] for step in result["log"]]
        assert result["log"][0]["ok"] == 9  # the declaration takes the tenth slot
        assert (error["index"], error["type"]) == (9, "MetranaEventQueueFullError")
        assert error["message"] == (
            "the event queue of this process stayed full (10 events) for 1 s "
            "(METRANA_BLOCK_TIMEOUT) with backpressure_strategy='Block'; the dispatcher is not "
            f"draining it (see {log_path})"
        )
        assert 1.0 <= error["seconds"] < 2.5
        stats = result["stats"][0]
        assert (stats["logged"], stats["dropped_queue_full"]) == (9, 0)
        assert closed_cleanly(result) and result["close"]["seconds"] < 1.0
    assert stored(client) == {}


@pytest.mark.slow
def test_raise_raises_naming_the_queue_size(
    start_job: StartJob, proxy: CountingProxy, client: Client
) -> None:
    proxy.set_fault(Fault.stall(path_prefix=INGEST))
    ranks = [
        [
            *setting(
                rank, "backpressure_strategy", "METRANA_BACKPRESSURE_STRATEGY", "Raise", "DropNew"
            ),
            ("log", {"n": 20}),
            ("stats", None),
            ("signal", "logged"),
            ("wait", "go"),
            ("close", {"close_strategy": "CompleteAll", "timeout": 20}),
        ]
        for rank in range(2)
    ]
    job = start_job(ranks, env={"METRANA_EVENT_QUEUE_MAX_SIZE": "10"})
    job.wait("logged", count=2)
    proxy.set_fault(None)
    job.signal("go")
    results = job.finish()

    for result in results:
        errors = result["log"][0]["errors"]
        assert result["log"][0]["ok"] == 9
        assert [e["index"] for e in errors] == list(range(9, 20))  # every call on a full ring
        assert {e["type"] for e in errors} == {"MetranaEventQueueFullError"}
        assert errors[0]["message"].startswith(
            "the event queue of this process is full (10 events, METRANA_EVENT_QUEUE_MAX_SIZE)"
        )
        stats = result["stats"][0]
        assert (stats["logged"], stats["dropped_queue_full"]) == (9, 0)  # raised, not dropped
        assert closed_cleanly(result)
    assert stored(client) == {"0": list(range(9)), "1": list(range(9))}


# -- error strategy --------------------------------------------------------------------------

REJECTION = b'{"error": {"code": "invalid_batch", "message": "metric loss is frozen"}}'
REJECTED = "the server rejected a batch (400): metric loss is frozen"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "other"),
    [
        ("Warn", "Silent"),
        ("Silent", "Warn"),
        ("RaiseOnLog", "RaiseOnClose"),
        ("RaiseOnClose", "RaiseOnLog"),
    ],
)
def test_error_strategy(
    mode: str, other: str, start_job: StartJob, proxy: CountingProxy, client: Client
) -> None:
    # The first batch is rejected: it holds rank 0's first point, and nothing else.
    proxy.set_fault(Fault.status_code(400, times=1, path_prefix=INGEST, body=REJECTION))
    ranks = []
    for rank in range(2):
        steps = [
            *setting(rank, "error_strategy", "METRANA_ERROR_MODES", mode, other),
            ("barrier", {"name": "joined", "count": 2}),
        ]
        if rank == 0:
            steps += [("log", {"n": 1}), ("flush", 10), ("stats", None), ("signal", "rejected")]
        else:
            steps += [("wait", "rejected.0")]
        steps += [
            ("wait_errors", 1),  # this writer has seen the error on the session's channel
            ("log", {"n": 4}),
            ("close", {"close_strategy": "CompleteAll", "timeout": 20}),
        ]
        ranks.append(steps)
    results = start_job(ranks).finish()

    rejected_stats = results[0]["stats"][0]
    assert (rejected_stats["logged"], rejected_stats["rejected"]) == (1, 1)
    for result in results:
        after = result["log"][-1]
        warnings = lines(result, containing="delivery error")
        if mode == "Warn":
            assert warnings == [f"delivery error (rejected): {REJECTED}"]
            assert lines(result, "WARNING", REJECTED) == warnings
        else:
            assert warnings == [] and lines(result, containing=REJECTED) == []
        if mode == "RaiseOnLog":
            assert after["ok"] == 3
            assert [(e["index"], e["type"], e["message"]) for e in after["errors"]] == [
                (
                    0,
                    "MetranaDeliveryError",
                    f"the dispatcher could not deliver data: {REJECTED} "
                    "(this point was not logged; later ones are)",
                )
            ]
        else:
            assert after["ok"] == 4 and no_errors(result)
        if mode == "RaiseOnClose":
            assert result["close"]["error"]["type"] == "MetranaDeliveryError"
            assert result["close"]["error"]["message"] == (
                f"the dispatcher could not deliver data: {REJECTED} (x1)"
            )
        else:
            assert closed_cleanly(result)
    # Rank 0's first point (step 0) was rejected; a point that raised used no step.
    later = 3 if mode == "RaiseOnLog" else 4
    assert stored(client) == {"0": list(range(1, later + 1)), "1": list(range(later))}


@pytest.mark.slow
def test_error_strategies_are_per_process_and_carry_every_error(
    start_job: StartJob, proxy: CountingProxy, client: Client
) -> None:
    """Rank 3 (Silent) has two distinct batches rejected, the second one twice; ranks 0, 1 and
    2 (RaiseOnLog, RaiseOnClose, Warn) see both errors, counted, on the session's channel."""
    first = b'{"error": {"code": "invalid_batch", "message": "first problem"}}'
    second = b'{"error": {"code": "invalid_batch", "message": "second problem"}}'
    problem_a = "the server rejected a batch (400): first problem"
    problem_b = "the server rejected a batch (400): second problem"
    proxy.set_fault(Fault.status_code(400, times=1, path_prefix=INGEST, body=first))
    modes = [
        [("init", {"error_strategy": "RaiseOnLog"})],
        [("env", {"METRANA_ERROR_MODES": "RaiseOnClose"}), ("init", {})],
        [("init", {})],  # Warn, the default
        [("init", {"error_strategy": "Silent"})],
    ]
    ranks = []
    for rank, steps in enumerate(modes):
        steps = [*steps, ("barrier", {"name": "joined", "count": 4})]
        if rank == 3:
            steps += [("log", {"n": 1}), ("flush", 10), ("signal", "first"), ("wait", "go")]
            steps += [("log", {"n": 1}), ("flush", 10), ("log", {"n": 1}), ("flush", 10)]
            steps += [("signal", "second")]
        else:
            steps += [("wait", "first.3"), ("wait_errors", 1), ("signal", "noticed")]
            steps += [("wait", "second.3"), ("wait_errors", 2)]
        steps += [("log", {"n": 2}), ("close", {"close_strategy": "CompleteAll", "timeout": 20})]
        ranks.append(steps)
    job = start_job(ranks)
    job.wait("noticed", count=3)  # every writer has seen the first error before the second
    proxy.set_fault(Fault.status_code(400, times=2, path_prefix=INGEST, body=second))
    job.signal("go")
    results = job.finish()

    on_log, on_close, warn, silent = results
    assert [(e["type"], e["message"]) for e in on_log["log"][0]["errors"]] == [
        (
            "MetranaDeliveryError",
            f"the dispatcher could not deliver data: {problem_a}; {problem_b} "
            "(this point was not logged; later ones are)",
        )
    ]
    assert on_log["log"][0]["ok"] == 1 and closed_cleanly(on_log)
    assert no_errors(on_close) and on_close["close"]["error"] == {
        "type": "MetranaDeliveryError",
        "message": f"the dispatcher could not deliver data: {problem_a} (x1); {problem_b} (x2)",
        "pending": None,
    }
    assert lines(warn, "WARNING", "delivery error") == [
        f"delivery error (rejected): {problem_a}",
        f"delivery error (rejected): {problem_b}",
    ]
    assert no_errors(warn) and closed_cleanly(warn)
    assert no_errors(silent) and closed_cleanly(silent) and silent["records"] == []
    for result in (on_log, on_close):
        assert lines(result, containing="delivery error") == []
    # Rank 3's first three points (steps 0 to 2) were rejected.
    assert stored(client) == {"0": [0], "1": [0, 1], "2": [0, 1], "3": [3, 4]}


@pytest.mark.slow
def test_raise_on_log_raises_once_when_two_threads_log_at_once() -> None:
    """Two threads that both picked up the raising ``log()``: one raises, the other logs."""
    metrana.init(
        workspace_name="w", project_name="p", run_name="threads", error_strategy="RaiseOnLog"
    )
    writer = _run.current_writer()
    assert writer is not None
    ErrorPublisher(writer.session.dir, 10).publish("rejected", "bad batch")
    writer.poll_errors()
    first, second = writer.log, writer.log  # as two threads racing into log()
    with pytest.raises(metrana.MetranaDeliveryError, match="bad batch"):
        first("loss", 1.0)
    second("loss", 2.0)
    metrana.log("loss", 3.0)
    assert writer.logged == 2
    metrana.close(close_strategy="Immediate")


# -- close strategy --------------------------------------------------------------------------


@pytest.mark.slow
def test_stalled_target_immediate_returns_at_once_complete_all_times_out(
    start_job: StartJob, proxy: CountingProxy, client: Client
) -> None:
    """Ranks 0 and 1 close Immediate, ranks 2 and 3 CompleteAll with a 2 s timeout."""
    proxy.set_fault(Fault.stall(path_prefix=INGEST))
    ranks = []
    for rank in range(4):
        value, other = ("Immediate", "CompleteAll") if rank < 2 else ("CompleteAll", "Immediate")
        steps = merge_init(
            setting(rank, "close_strategy", "METRANA_CLOSE_STRATEGY", value, other),
            num_dispatch_workers=1,
        )
        close: dict[str, Any] = {}
        if rank == 2:  # the timeout by argument, over its variable
            steps[0][1]["METRANA_CLOSE_TIMEOUT"] = "30"
            close = {"timeout": 2}
        if rank == 3:
            steps[0][1]["METRANA_CLOSE_TIMEOUT"] = "2"
        steps.append(("barrier", {"name": "joined", "count": 4}))
        if rank == 2:  # one point in flight, stalled; with one worker, nothing else is read
            steps += [("log", {"n": 1}), ("signal", "plugged")]
        steps += [("wait", "go"), ("log", {"n": 20}), ("stats", None), ("close", close)]
        ranks.append(steps)
    job = start_job(ranks)
    job.wait("plugged", count=1)
    wait_until(lambda: proxy.arrived == 1, "the first ingest request")
    job.signal("go")
    session = the_session()
    # The dispatcher discards what the Immediate ranks left in their rings, stall or not.
    wait_until(lambda: session_stats(session.dir).dropped_on_close == 40, "the Immediate discards")
    results = job.finish()
    assert stored(client) == {}  # nothing was acknowledged

    for result in results[:2]:
        assert result["stats"][0]["pending"] == 20
        assert closed_cleanly(result) and result["close"]["seconds"] < 1.0
        assert lines(result, "WARNING", "close (Immediate)") == [
            "close (Immediate): discarding 20 points not yet delivered"
        ]
    for result, pending in zip(results[2:], (21, 20), strict=True):
        assert result["stats"][0]["pending"] == pending
        assert result["close"]["error"] == {
            "type": "MetranaTimeoutError",
            "message": f"close (CompleteAll) timed out after 2.0 s: {pending} points were not "
            "delivered",
            "pending": pending,
        }
        assert 2.0 <= result["close"]["seconds"] < 3.0

    # The timeout discarded nothing: once the target answers, CompleteAll's points arrive.
    proxy.set_fault(None)
    wait_until(
        lambda: stored(client) == {"2": list(range(21)), "3": list(range(20))},
        "the CompleteAll points to be stored",
    )


@pytest.mark.slow
def test_complete_pending_finishes_in_flight_and_discards_the_rest(
    start_job: StartJob, proxy: CountingProxy, client: Client
) -> None:
    proxy.set_fault(Fault.stall(path_prefix=INGEST))
    ranks = []
    for rank in range(2):
        steps = merge_init(
            setting(
                rank, "close_strategy", "METRANA_CLOSE_STRATEGY", "CompletePending", "Immediate"
            ),
            num_dispatch_workers=2,
        )
        steps.append(("barrier", {"name": "joined", "count": 2}))
        if rank == 1:
            steps.append(("wait", "go1"))
        steps += [
            ("log", {"n": 1}),  # in flight, stalled
            ("wait", "go2"),
            ("log", {"n": 10}),  # never read: both workers are busy
            ("stats", None),
            ("close", {}),  # the strategy given to init()
        ]
        ranks.append(steps)
    job = start_job(ranks)
    wait_until(lambda: proxy.arrived == 1, "rank 0's point in flight")
    job.signal("go1")
    wait_until(lambda: proxy.arrived == 2, "rank 1's point in flight")
    job.signal("go2")
    session = the_session()
    wait_until(lambda: session_stats(session.dir).dropped_on_close == 20, "the discards")
    released = time.monotonic()
    proxy.set_fault(None)
    results = job.finish()

    for result in results:
        assert result["stats"][0]["pending"] == 11
        assert closed_cleanly(result)
        assert result["close"]["end"] > released  # it let the in-flight request finish
        assert result["close"]["end"] - released < 2.0
        assert lines(result, "WARNING", "close (CompletePending)") == [
            "close (CompletePending): 10 points still queued were discarded"
        ]
    assert stored(client) == {"0": [0], "1": [0]}


@pytest.mark.slow
def test_complete_all_returns_when_everything_is_acknowledged(
    start_job: StartJob, proxy: CountingProxy, client: Client
) -> None:
    proxy.set_fault(Fault.slow(0.3, path_prefix=INGEST))
    ranks = []
    for rank in range(2):
        steps = setting(
            rank, "close_strategy", "METRANA_CLOSE_STRATEGY", "CompletePending", "Immediate"
        )
        close: dict[str, Any] = {"close_strategy": "CompleteAll"}  # close()'s argument wins
        if rank == 1:
            steps = [("env", {"METRANA_CLOSE_STRATEGY": "CompleteAll"}), ("init", {})]
            close = {}
        ranks.append([*steps, ("log", {"n": 30}), ("stats", None), ("close", close)])
    results = start_job(ranks).finish()
    kill_dispatcher(the_session())  # whatever close() did not wait for is lost now

    for result in results:
        assert result["stats"][0]["pending"] > 0
        assert closed_cleanly(result)
        assert 0.1 < result["close"]["seconds"] < 5.0
        assert lines(result, "WARNING") == []
    assert stored(client) == {"0": list(range(30)), "1": list(range(30))}


# -- resume strategy -------------------------------------------------------------------------


def _resume_job(value: str, other: str, points: int) -> list[list[Step]]:
    return [
        [
            *setting(rank, "resume_strategy", "METRANA_RESUME_STRATEGY", value, other),
            ("log", {"n": points}),
            ("close", {"close_strategy": "CompleteAll", "timeout": 20}),
        ]
        for rank in range(2)
    ]


@pytest.mark.slow
def test_resume_allow_continues_the_run_of_another_job(
    start_job: StartJob, proxy: CountingProxy, client: Client
) -> None:
    first = start_job(_resume_job("Allow", "Never", 3), env={"METRANA_ORCHESTRATION_ID": "job-a"})
    for result in first.finish():
        assert "init_error" not in result and closed_cleanly(result)
    second = start_job(_resume_job("Allow", "Never", 2), env={"METRANA_ORCHESTRATION_ID": "job-b"})
    for result in second.finish():
        assert "init_error" not in result and closed_cleanly(result)

    assert stored(client) == {"0": list(range(5)), "1": list(range(5))}  # steps continued
    (experiment,) = client.list_experiments().experiments
    assert experiment.orchestration_id == "job-b"


@pytest.mark.slow
def test_resume_never_refuses_another_job_but_not_the_same_job(
    start_job: StartJob, proxy: CountingProxy, client: Client
) -> None:
    first = start_job(_resume_job("Never", "Allow", 2), env={"METRANA_ORCHESTRATION_ID": "job-a"})
    for result in first.finish():  # both ranks of the job that created the run
        assert "init_error" not in result and closed_cleanly(result)

    other = start_job(_resume_job("Never", "Allow", 2), env={"METRANA_ORCHESTRATION_ID": "job-b"})
    for result in other.finish():
        error = result["init_error"]
        assert error["type"] == "MetranaRunExistsError", error
        assert "already exists" in error["message"] and "'Never'" in error["message"]
        assert "log" not in result
    assert stored(client) == {"0": [0, 1], "1": [0, 1]}

    # A restart of the job that owns the run is let in (its dispatcher has gone meanwhile).
    kill_dispatcher(the_session(orchestration_id="job-a"))
    again = start_job(_resume_job("Never", "Allow", 1), env={"METRANA_ORCHESTRATION_ID": "job-a"})
    for result in again.finish():
        assert "init_error" not in result and closed_cleanly(result)
    assert stored(client) == {"0": [0, 1, 2], "1": [0, 1, 2]}
    (experiment,) = client.list_experiments().experiments
    assert experiment.orchestration_id == "job-a"


@pytest.mark.slow
def test_a_restart_of_the_same_job_continues_steps_while_its_dispatcher_lives(
    start_job: StartJob, proxy: CountingProxy, client: Client
) -> None:
    """Ranks 0 and 1 log and close, as if they crashed and were restarted; rank 2 (say, an
    evaluator) keeps the session's dispatcher alive meanwhile. The restarted ranks resume."""
    ranks = [*_resume_job("Allow", "Never", 3), [("init", {}), ("wait", "done")]]
    first = start_job(ranks, env={"METRANA_ORCHESTRATION_ID": "job-a"})
    first.wait("result.0.json")
    first.wait("result.1.json")
    again = start_job(_resume_job("Allow", "Never", 2), env={"METRANA_ORCHESTRATION_ID": "job-a"})
    for result in again.finish():
        assert "init_error" not in result and closed_cleanly(result)
    first.signal("done")
    first.finish()
    assert stored(client) == {"0": list(range(5)), "1": list(range(5))}


# -- log level -------------------------------------------------------------------------------

LEVELS = [
    ("Trace", 5),
    ("Debug", 10),
    ("Info", 20),
    ("Success", 25),
    ("Warn", 30),
    ("Error", 40),
    ("Critical", 50),
    ("Off", 60),
]


@pytest.mark.slow
def test_log_level_filters_writers_and_dispatcher(
    start_job: StartJob, proxies: Callable[[], CountingProxy], client: Client
) -> None:
    """Eight sessions at once, one per level, each with two ranks and its own proxy that
    rejects the first batch (an ERROR in the dispatcher, a WARNING in each writer)."""
    ranks: list[list[Step]] = []
    for index, (level, _) in enumerate(LEVELS):
        level_proxy = proxies()
        level_proxy.set_fault(Fault.status_code(400, times=1, path_prefix=INGEST, body=REJECTION))
        other = LEVELS[(index + 4) % len(LEVELS)][0]
        for rank in (0, 1):
            steps = merge_init(
                setting(rank, "log_level", "METRANA_LOG_LEVEL", level, other), run_name=level
            )
            steps[0][1]["METRANA_INGESTION_URL"] = level_proxy.url
            steps.append(("barrier", {"name": f"joined{level}", "count": 2}))
            if rank == 0:
                steps += [("log", {"n": 1}), ("flush", 10), ("signal", f"rejected{level}")]
            else:
                steps.append(("wait", f"rejected{level}.{len(ranks) - 1}"))
            steps += [("wait_errors", 1), ("probe", None), ("close", {"timeout": 20})]
            ranks.append(steps)
    results = start_job(ranks).finish(timeout=60)

    found = sessions()
    for index, (level, number) in enumerate(LEVELS):
        for result in results[2 * index : 2 * index + 2]:
            assert result["level"] == number
            probes = lines(result, containing="probe")
            assert probes == [f"probe {n}" for n in (5, 10, 20, 25, 30, 40, 50) if n >= number]
            assert bool(lines(result, "DEBUG", "metrana: joined session")) == (number <= 10)
            assert bool(lines(result, "WARNING", "delivery error (rejected)")) == (number <= 30)
            assert closed_cleanly(result)
        log = found[level].log_path.read_text()
        assert log.count("DEBUG: new writer") == (2 if number <= 10 else 0), (level, log)
        assert (f"INFO: run {level} ready" in log) == (number <= 20), (level, log)
        assert ("ERROR: dropping 1 points the target rejected" in log) == (number <= 40), log
        if number > 40:
            assert log == "", (level, log)


# -- retry pacing and concurrency ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "workers",
    [1, 4],
)
def test_no_ingest_request_before_retry_after_has_passed(
    workers: int, start_job: StartJob, proxy: CountingProxy, client: Client
) -> None:
    proxy.set_fault(Fault.status_code(429, retry_after=1, times=1, path_prefix=INGEST))
    ranks = []
    for rank in range(2):
        steps: list[Step] = [
            ("init", {"num_dispatch_workers": workers}),
            ("barrier", {"name": "joined", "count": 2}),
        ]
        if rank == 0:
            steps.append(("log", {"n": 1}))
        steps += [
            ("wait", "go"),  # after the 429 was answered, more points to ship
            ("log", {"n": 5}),
            ("close", {"close_strategy": "CompleteAll", "timeout": 20}),
        ]
        ranks.append(steps)
    job = start_job(ranks)
    wait_until(lambda: bool(proxy.ingests()), "the 429")
    job.signal("go")
    results = job.finish()

    first, *later = proxy.ingests()
    assert (first.status, first.fault) == (429, "status")
    assert later and all(r.status == 200 for r in later)
    too_soon = [round(r.at - first.at, 3) for r in later if r.at - first.at < 1.0]
    assert too_soon == [], f"ingest requests sent {too_soon} s after a 429 with Retry-After: 1"
    for result in results:
        assert closed_cleanly(result)
    assert stored(client) == {"0": list(range(6)), "1": list(range(5))}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("workers", "dispatch_queue", "bound"),
    [(2, "", 2), (4, "", 4), (4, "3", 3)],  # METRANA_DISPATCH_QUEUE_MAX_SIZE bounds it too
)
def test_num_dispatch_workers_bounds_requests_in_flight(
    workers: int,
    dispatch_queue: str,
    bound: int,
    start_job: StartJob,
    proxy: CountingProxy,
    client: Client,
) -> None:
    proxy.set_fault(Fault.slow(0.25, path_prefix=INGEST))
    ranks = [
        [
            ("init", {"num_dispatch_workers": workers}),
            ("until", {"stop": "stop", "every": 0.002}),
            ("close", {"close_strategy": "CompleteAll", "timeout": 20}),
        ]
        for _ in range(2)
    ]
    job = start_job(ranks, env={"METRANA_DISPATCH_QUEUE_MAX_SIZE": dispatch_queue})
    wait_until(lambda: len(proxy.ingests()) >= 3 * bound, "three rounds of requests")
    job.signal("stop")
    results = job.finish()

    assert proxy.max_inflight == bound  # reached, never exceeded
    expected = {}
    for rank, result in enumerate(results):
        assert no_errors(result) and closed_cleanly(result)
        expected[str(rank)] = list(range(result["log"][0]["ok"]))
    assert stored(client) == expected
