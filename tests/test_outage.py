"""The server unreachable for longer than the retry budget: batches go to the disk spool, then
are replayed oldest first when it answers again; nothing lost, nothing twice."""

from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from conftest import dispatcher_pids, init_over_http

import metrana
from metrana.api import Client
from metrana.api._routes import API_PREFIX, INGEST_PATH
from metrana.dispatcher._spool import spool_root
from metrana.testing import Fault, FaultProxy, RunningServer, stored_points
from metrana.writer import _run


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _spooled_files(home: Path) -> list[Path]:
    return sorted(spool_root(home).glob("*/*.spool"))


def _stored_steps(client: Client) -> list[int]:
    experiments = client.list_experiments().experiments
    if not experiments:
        return []
    series = stored_points(client, experiments[0].id)
    return sorted(step for points in series.values() for step, _ in points)


def _init_through(
    proxy: FaultProxy, server: RunningServer, run_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init() against ``server`` through ``proxy``, with a retry budget of half a second, so
    that a refused connection sends batches to the spool quickly."""
    monkeypatch.setenv("METRANA_RETRY_MAX_ELAPSED", "0.5")
    monkeypatch.setenv("METRANA_RETRY_MAX_ATTEMPTS", "3")
    init_over_http(server, run_name, proxy.url)


def _outage(
    isolated: Path,
    live_server: RunningServer,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
    kill_while_spooling: bool,
) -> None:
    with FaultProxy(live_server.url) as proxy:
        _init_through(proxy, live_server, "outage", monkeypatch)
        for step in range(1_000):
            metrana.log("loss", float(step), step=step)
        metrana.flush(timeout=30)
        assert _stored_steps(client) == list(range(1_000))

        proxy.set_fault(Fault.refuse())  # the server is gone for longer than the budget
        for step in range(1_000, 6_000):
            metrana.log("loss", float(step), step=step)
        metrana.flush(timeout=60)  # returns once everything is acknowledged or spooled
        assert _spooled_files(isolated), "nothing was spooled during the outage"
        assert _stored_steps(client) == list(range(1_000))

        if kill_while_spooling:
            (pid,) = dispatcher_pids(Path(os.environ["METRANA_SESSION_ROOT"]))
            os.kill(pid, signal.SIGKILL)
            psutil.Process(pid).wait(10)
            # a new dispatcher (started by this writer's watchdog) takes over the spool
            _wait_for(
                lambda: any(
                    p != pid for p in dispatcher_pids(Path(os.environ["METRANA_SESSION_ROOT"]))
                ),
                30,
                "a replacement dispatcher",
            )
        for step in range(6_000, 7_000):
            metrana.log("loss", float(step), step=step)

        proxy.set_fault(None)  # the server is back
        _wait_for(lambda: len(_stored_steps(client)) == 7_000, 60, "the spool to be replayed")
        # The last replayed batch is stored before its answer reaches the dispatcher: keep the
        # server reachable until the spool is emptied.
        _wait_for(lambda: not _spooled_files(isolated), 30, "the spool to be emptied")
        metrana.close(close_strategy="CompleteAll", timeout=30)
    assert _stored_steps(client) == list(range(7_000))


@pytest.mark.slow
def test_an_outage_past_the_retry_budget_spools_then_replays_exactly_once(
    isolated: Path, live_server: RunningServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    _outage(isolated, live_server, client, monkeypatch, kill_while_spooling=False)


@pytest.mark.slow
def test_a_dispatcher_killed_while_spooling_is_replaced_and_loses_nothing(
    isolated: Path, live_server: RunningServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    _outage(isolated, live_server, client, monkeypatch, kill_while_spooling=True)


@pytest.mark.slow
def test_two_outages_with_a_dispatcher_restart_between_lose_nothing(
    isolated: Path, live_server: RunningServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second outage's spool starts its batch ids at 1 again, under a new dispatcher: its
    batches must not be taken for replays of the first outage's (regression)."""
    session_root = Path(os.environ["METRANA_SESSION_ROOT"])
    with FaultProxy(live_server.url) as proxy:
        _init_through(proxy, live_server, "two-outages", monkeypatch)
        step = 0
        for outage in range(2):
            proxy.set_fault(Fault.refuse())
            for _ in range(2_000):
                metrana.log("loss", float(step), step=step)
                step += 1
            metrana.flush(timeout=60)
            assert _spooled_files(isolated)
            proxy.set_fault(None)
            _wait_for(
                lambda logged=step: len(_stored_steps(client)) == logged,  # type: ignore[misc]
                60,
                "the spool replayed",
            )
            _wait_for(lambda: not _spooled_files(isolated), 30, "the spool emptied")
            if outage == 0:  # a new dispatcher: a new Spool object over the same directory
                (killed,) = dispatcher_pids(session_root)
                os.kill(killed, signal.SIGKILL)
                psutil.Process(killed).wait(10)
                _wait_for(
                    lambda old=killed: any(p != old for p in dispatcher_pids(session_root)),  # type: ignore[misc]
                    30,
                    "a replacement dispatcher",
                )
        metrana.close(close_strategy="CompleteAll", timeout=30)
    assert _stored_steps(client) == list(range(4_000))


@contextmanager
def _spool_too_small_for_a_pass(
    live_server: RunningServer,
    run_name: str,
    monkeypatch: pytest.MonkeyPatch,
    then: Callable[[], None] | None = None,
) -> Iterator[tuple[FaultProxy, Path]]:
    """init() through a proxy that answers 503 to every batch, with a spool of 100 kB, then
    20,000 points logged (and ``then`` called) while the dispatcher is frozen (SIGSTOP), so
    that its next pass finds them all at once. A read stops at the last checkpoint within a
    batch's share: a batch of 19,455 points (too large for the spool), then the 545 left.
    Yields the proxy and the dispatcher's log."""
    monkeypatch.setenv("METRANA_SPOOL_MAX_BYTES", "100000")
    with FaultProxy(live_server.url) as proxy:
        _init_through(proxy, live_server, run_name, monkeypatch)
        writer = _run.current_writer()
        assert writer is not None
        info = writer.session.read_info()
        assert info is not None
        proxy.set_fault(Fault.status_code(503, path_prefix=API_PREFIX + INGEST_PATH))
        os.kill(info.pid, signal.SIGSTOP)
        try:
            for step in range(20_000):
                metrana.log("loss", float(step), step=step)
            if then is not None:
                then()
        finally:
            os.kill(info.pid, signal.SIGCONT)
        yield proxy, writer.session.log_path


@pytest.mark.slow
def test_batches_the_full_spool_cannot_take_stay_in_the_rings(
    isolated: Path, live_server: RunningServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two batches in flight fail; the spool has room for the second (small) one only. It must
    not be spooled and committed: its commit would skip the first one's records. Both are read
    again from the rings and delivered once the server answers (regression)."""
    with _spool_too_small_for_a_pass(live_server, "full-spool", monkeypatch) as (proxy, log):
        _wait_for(lambda: b"METRANA_SPOOL_MAX_BYTES" in log.read_bytes(), 60, "a full spool")
        proxy.set_fault(None)
        _wait_for(lambda: len(_stored_steps(client)) >= 20_000, 60, "every point stored")
        metrana.close(close_strategy="CompleteAll", timeout=30)
    assert _stored_steps(client) == list(range(20_000))
    assert not _spooled_files(isolated)


@pytest.mark.slow
def test_a_discard_behind_a_batch_that_cannot_be_kept_is_cancelled(
    isolated: Path, live_server: RunningServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close(Immediate) discards what the dispatcher has not read; a batch read before it fails
    and the spool cannot take it. Reading that batch again from the ring reads the discarded
    points too: they are delivered, and the discard is taken back (not counted twice)."""
    close = functools.partial(metrana.close, close_strategy="Immediate")
    with _spool_too_small_for_a_pass(live_server, "discard", monkeypatch, close) as (proxy, log):
        # one pass reads up to a checkpoint (19,455 points), then the close discards the rest
        _wait_for(lambda: b"discarded 545 points still queued" in log.read_bytes(), 30, "discard")
        _wait_for(lambda: b"are delivered instead" in log.read_bytes(), 60, "the cancel")
        proxy.set_fault(None)
        _wait_for(lambda: len(_stored_steps(client)) >= 20_000, 60, "every point stored")
    assert _stored_steps(client) == list(range(20_000))
    assert b"the 545 points discarded are delivered instead" in log.read_bytes()


@pytest.mark.slow
def test_sigterm_in_backoff_spools_at_once_and_a_replay_stores_each_point_once(
    isolated: Path, live_server: RunningServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry budget of minutes: SIGTERM must not wait it out. The dispatcher exits within
    5 s with its batches in the spool, and its successor delivers them, each point once."""
    session_root = Path(os.environ["METRANA_SESSION_ROOT"])
    monkeypatch.setenv("METRANA_RETRY_MAX_ELAPSED", "300")
    monkeypatch.setenv("METRANA_RETRY_MAX_ATTEMPTS", "1000")
    with FaultProxy(live_server.url) as proxy:
        init_over_http(live_server, "sigterm", proxy.url)
        for step in range(1_000):
            metrana.log("loss", float(step), step=step)
        metrana.flush(timeout=30)
        proxy.set_fault(Fault.refuse())
        for step in range(1_000, 3_000):
            metrana.log("loss", float(step), step=step)

        def in_backoff() -> bool:
            dispatcher = metrana.stats().session.dispatcher
            return dispatcher is not None and dispatcher.inflight > 0

        _wait_for(in_backoff, 30, "a batch in flight against the unreachable server")
        (pid,) = dispatcher_pids(session_root)
        signalled = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        psutil.Process(pid).wait(30)
        assert time.monotonic() - signalled < 5
        assert _spooled_files(isolated), "SIGTERM left the batches in flight unspooled"
        assert _stored_steps(client) == list(range(1_000))

        proxy.set_fault(None)  # the writer's watchdog starts a successor, which replays
        _wait_for(lambda: len(_stored_steps(client)) >= 3_000, 60, "the spool replayed")
        _wait_for(lambda: not _spooled_files(isolated), 30, "the spool to be emptied")
        metrana.close(close_strategy="CompleteAll", timeout=30)
    assert _stored_steps(client) == list(range(3_000))
