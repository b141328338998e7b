"""The test seams of ``metrana.testing``: a writer and a dispatcher in one process, a
capturing target, a simulated fork. Each test takes milliseconds."""

from __future__ import annotations

import pytest

import metrana
from metrana.dispatcher.targets import DeliveryFailure, RejectedBatch
from metrana.ring import M_STATE, STATE_CLOSED
from metrana.session import current_process
from metrana.testing import CapturingTarget, InProcessSession, reset, simulate_fork, wait_until
from metrana.writer import _run

NAMES = {"workspace_name": "w", "project_name": "p", "run_name": "r"}


def test_points_logged_in_process_reach_the_capturing_target_exactly_once() -> None:
    with InProcessSession() as session:
        session.init(**NAMES)
        for step in range(1_000):
            metrana.log("loss", 1.0 / (step + 1), step=step)
        metrana.log({"lr": 0.1, "acc": 0.5}, step=3)
        metrana.log("loss", 99.0, step=5)  # a second write of step 5: first write wins
        metrana.close(close_strategy="CompleteAll")
        session.wait_exit()
    target = session.target
    assert target.point_count() == 1_002
    assert target.values("loss")[5] == pytest.approx(1 / 6)
    assert target.values("lr") == {3: 0.1}
    assert target.status == "done"


def test_a_delivery_failure_is_retried_and_a_rejection_dropped_and_counted() -> None:
    target = CapturingTarget()
    target.fail_next(DeliveryFailure("the network blinked"), times=2)
    with InProcessSession(target) as session:
        session.init(**NAMES, close_strategy="CompleteAll")
        for step in range(10):
            metrana.log("a", float(step), step=step)
        metrana.flush(timeout=10)
        target.fail_next(RejectedBatch("no", 400))
        metrana.log("b", 1.0, step=0)
        wait_until(lambda: metrana.stats().process.rejected == 1, 10, message="a rejection")
        metrana.close()
    assert target.values("a") == {step: float(step) for step in range(10)}
    assert target.values("b") == {}


def test_simulate_fork_gives_the_child_its_own_ring_and_identity() -> None:
    parent_identity = current_process()
    with InProcessSession() as session:
        session.init(**NAMES)
        metrana.log("parent", 1.0, step=0)
        parent = simulate_fork()
        assert parent is not None and parent.closed is False
        assert current_process().pid != parent_identity.pid
        metrana.log("child", 2.0, step=0)  # opens the child's ring, no new handshake
        child = _run.current_writer()
        assert child is not None and child is not parent
        assert child.ring.writer_id != parent.ring.writer_id
        assert child.pid == current_process().pid
        metrana.close()
        parent.close(metrana.CloseStrategy.COMPLETE_PENDING, 10)
        assert parent.ring.get_slot(M_STATE) == STATE_CLOSED
        parent.release()
        session.wait_exit()
    assert session.target.values("parent") == {0: 1.0}
    assert session.target.values("child") == {0: 2.0}
    reset()
    assert current_process() == parent_identity
