"""The error channel: a published delivery error reaches every writer per its error strategy."""

from __future__ import annotations

import logging

import pytest

import metrana
from metrana.session import ErrorPublisher, ErrorWatcher, read_errors
from metrana.writer import _run
from metrana.writer._writer import Writer

NAMES = {"workspace_name": "w", "project_name": "p", "run_name": "errors"}


def _writer() -> Writer:
    writer = _run.current_writer()
    assert writer is not None
    return writer


def _publish(message: str, max_size: int = 10) -> None:
    ErrorPublisher(_writer().session.dir, max_size).publish("delivery", message)
    _writer().poll_errors()


@pytest.mark.slow
def test_warn_logs_each_distinct_error_once(caplog: pytest.LogCaptureFixture) -> None:
    metrana.init(**NAMES, error_strategy="Warn")
    with caplog.at_level(logging.WARNING, logger="metrana"):
        _publish("server said 503")
        _publish("server said 503")  # a repeat bumps a count, no new warning
        _publish("server said 401")
    warnings = [r.getMessage() for r in caplog.records if "delivery error" in r.getMessage()]
    assert warnings == [
        "delivery error (delivery): server said 503",
        "delivery error (delivery): server said 401",
    ]
    metrana.log("loss", 1.0)
    metrana.close(close_strategy="CompleteAll")


@pytest.mark.slow
def test_silent_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    metrana.init(**NAMES, error_strategy="Silent")
    with caplog.at_level(logging.DEBUG, logger="metrana"):
        _publish("server said 503")
    assert not [r for r in caplog.records if "server said" in r.getMessage()]
    metrana.close(close_strategy="CompleteAll")


@pytest.mark.slow
def test_raise_on_log_raises_from_the_next_log_only() -> None:
    metrana.init(**NAMES, error_strategy="RaiseOnLog")
    metrana.log("loss", 1.0)
    _publish("the server rejected a batch (400): bad scale")
    with pytest.raises(metrana.MetranaDeliveryError, match=r"rejected a batch \(400\): bad scale"):
        metrana.log("loss", 2.0)
    metrana.log("loss", 3.0)  # raised once; logging goes on
    metrana.close(close_strategy="CompleteAll")


@pytest.mark.slow
def test_raise_on_close_raises_from_close_after_closing() -> None:
    metrana.init(**NAMES, error_strategy="RaiseOnClose")
    metrana.log("loss", 1.0)
    _publish("gave up after 8 attempts")
    metrana.log("loss", 2.0)  # does not raise
    with pytest.raises(metrana.MetranaDeliveryError, match=r"gave up after 8 attempts \(x1\)"):
        metrana.close(close_strategy="CompleteAll")
    assert _run.current_writer() is None  # closed all the same


@pytest.mark.slow
def test_errors_from_before_a_writer_joined_are_not_its_own(tmp_path: object) -> None:
    metrana.init(**NAMES, error_strategy="RaiseOnLog")
    session_dir = _writer().session.dir
    ErrorPublisher(session_dir, 10).publish("delivery", "old")
    watcher = ErrorWatcher(session_dir)
    assert watcher.new_errors() == []
    ErrorPublisher(session_dir, 10).publish("delivery", "new")
    assert [e.message for e in watcher.new_errors()] == ["new"]
    metrana.close(close_strategy="Immediate")


@pytest.mark.slow
def test_the_channel_is_bounded_and_counts_overflow(tmp_path: object) -> None:
    metrana.init(**NAMES)
    session_dir = _writer().session.dir
    publisher = ErrorPublisher(session_dir, 3)
    for i in range(5):
        publisher.publish("delivery", f"error {i}")
    state = read_errors(session_dir / "errors.json")
    assert state is not None
    assert [e.message for e in state.errors] == ["error 2", "error 3", "error 4"]
    assert state.overflow == 2
    metrana.close(close_strategy="Immediate")
