"""The process-global logging state behind ``metrana.init()``, ``log()`` and ``close()``."""

from __future__ import annotations

import atexit
import functools
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .._config import Config, resolve_config
from .._enums import CloseStrategy, parse_enum
from .._errors import (
    MetranaAlreadyInitializedError,
    MetranaConfigError,
    MetranaError,
    MetranaNotInitializedError,
)
from .._logging import configure, logger
from ..session import (
    Handshake,
    Session,
    Stats,
    current_process,
    join,
    reap_sessions,
    recover_orphans,
    session_stats,
)
from ._writer import Writer

__all__ = ["close", "flush", "get_last_step", "init", "log", "stats"]

_writer: Writer | None = None
# Set in a forked child whose parent had a writer: the child's first log() opens its own ring.
_inherited: tuple[Config, Session, Handshake, dict[tuple[str, str, str], int]] | None = None
_state_lock = threading.Lock()
# Auto-step state of this process's closed writers, per session, for a later init() to continue.
_closed_steps: dict[str, dict[tuple[str, str, str], int]] = {}
_atexit_registered = False


def init(
    api_key: str | None = None,
    *,
    workspace_name: str,
    project_name: str,
    run_name: str,
    experiment_name: str | None = None,
    resume_strategy: Any = None,
    backpressure_strategy: Any = None,
    error_strategy: Any = None,
    close_strategy: Any = None,
    log_level: Any = None,
    num_dispatch_workers: int = 4,
    ingestion_url: str | None = None,
    system_metrics: bool | None = None,
    config: Mapping[str, Any] | None = None,
) -> None:
    """Join (or start) the run's session in this process.

    The first process of a job on a host starts the session's dispatcher; every other process
    with the same run identity and orchestration id joins it. Blocks until the dispatcher has
    created or resumed the run (``METRANA_INIT_TIMEOUT``, default 30 s).

    With ``system_metrics=True`` (or ``METRANA_SYSTEM_METRICS=1``) the dispatcher samples every
    writer process (CPU, RSS, threads, open files) and the host (memory, load) every
    ``METRANA_SYSTEM_METRICS_INTERVAL`` seconds (default 5) into ``system/...`` series.

    ``config`` (a dict of JSON values: hyperparameters, the job's settings) is stored as the
    run's metadata when the run opens, merged into what a resumed run already has (shallow:
    its top-level keys replace the stored ones). It is the config of the process that opens
    the run on this host; a process that joins a running session does not change it.

    Raises:
        MetranaAlreadyInitializedError: ``init()`` was already called in this process.
        MetranaConfigError: a setting is invalid (the message names it and what is accepted).
        MetranaDispatcherError: the dispatcher could not start or open the run.
        MetranaRunExistsError: ``resume_strategy="Never"`` and the run exists for another job.
    """
    global _writer, _inherited
    with _state_lock:
        if _writer is not None and not _writer.closed:
            raise MetranaAlreadyInitializedError(
                "metrana.init() was already called in this process; call metrana.close() first"
            )
        settings = resolve_config(
            api_key=api_key,
            workspace_name=workspace_name,
            project_name=project_name,
            run_name=run_name,
            experiment_name=experiment_name,
            resume_strategy=resume_strategy,
            backpressure_strategy=backpressure_strategy,
            error_strategy=error_strategy,
            close_strategy=close_strategy,
            log_level=log_level,
            num_dispatch_workers=num_dispatch_workers,
            ingestion_url=ingestion_url,
            system_metrics=system_metrics,
            config=config,
        )
        configure(settings.log_level)
        session = Session.for_config(settings)
        reap_sessions()
        recover_orphans()  # rings an earlier job left undelivered: a dispatcher takes them
        # The ring exists before the dispatcher is looked for, so a dispatcher about to exit
        # for lack of writers sees it and stays.
        writer = Writer(
            settings, session, next_steps=_closed_steps.get(str(session.dir)), redirect=_redirect
        )
        try:
            process, handshake = join(session, settings, settings.init_timeout)
            writer.adopt(process)
            writer.apply_handshake(handshake)
            if process is None:
                # Joining a dispatcher that was already running: the handshake's table is as
                # old as the run's opening. Steps logged since (say, by this job's processes
                # before a restart) are in the dispatcher's table once their rings are read.
                session.wait_finished_rings(min(5.0, settings.init_timeout))
                writer.apply_resume(session.read_resume())
                _warn_unstored_config(settings, session)
        except BaseException:
            writer.abandon()
            raise
        writer.start_watchdog()
        _writer = writer
        _inherited = None
        _bind_log(writer)
        _register_atexit()
        logger.debug("metrana: joined session %s", session.dir)


def _warn_unstored_config(settings: Config, session: Session) -> None:
    """A process that joins a running session does not change the run's metadata: say so
    when its ``config`` holds what the config of the process that opened the run does not."""
    try:
        opened = session.read_config().metadata
    except (OSError, ValueError):
        return
    if not settings.metadata.items() <= opened.items():
        logger.warning(
            "metrana: init(config=...) of this process is not stored: it joined a session "
            "another process of the job opened, whose config is the run's metadata"
        )


def log(
    metric_name: str | Mapping[str, float | int],
    value: float | int | Sequence[float | int] | Any = None,
    scale: Any = None,
    step: int | None = None,
    labels: dict[str, str] | None = None,
    timestamp: int | None = None,
) -> None:
    """Record one point of the series ``(metric_name, scale, labels)``.

    Never does I/O: the point is appended to this process's ring (acknowledgement level A0)
    and the dispatcher delivers it. ``step`` auto-increments per series when omitted;
    ``timestamp`` is Unix nanoseconds (default: now).

    Also accepted: ``log({"loss": l, "acc": a}, step=…)`` logs several metrics at one step
    (one ring record); a list, tuple, 1-D NumPy array, PyTorch tensor or JAX array ``value``
    logs consecutive points from ``step`` (or from the series' next step), as one ring record
    of raw float64 or int64 bytes. Every value is checked before any is logged; an array
    larger than a quarter of the ring is refused.

    Raises:
        MetranaNotInitializedError: before ``init()`` or after ``close()``.
        MetranaInvalidMetricError / MetranaInvalidMetricTypeError: bad input; nothing is logged.
        MetranaEventQueueFullError: the ring is full and backpressure is ``Raise`` (or
            ``Block`` gave up).
    """
    writer = _writer
    if writer is None:
        writer = _writer_after_fork()
    writer.log(metric_name, value, scale, step, labels, timestamp)


def get_last_step(
    metric_name: str, scale: Any = None, labels: dict[str, str] | None = None
) -> int | None:
    """The last step of a series as this process knows it: logged here, or stored before a
    resume. None when the series has no step yet."""
    writer = _writer
    if writer is None:
        writer = _writer_after_fork()
    return writer.last_step(metric_name, scale, labels)


def current_or_forked_writer() -> Writer:
    """This process's writer: the open one, or (in a forked child) its own, opened now."""
    writer = _writer
    return writer if writer is not None else _writer_after_fork()


def _redirect(writer: Writer, args: tuple[Any, ...]) -> None:
    """A detached writer's log() calls (a kept reference): to this process's current writer."""
    if _writer is writer:
        raise MetranaNotInitializedError(
            "metrana.log() called while metrana.close() runs in another thread; "
            "stop logging before close(), or log again after a new init()"
        )
    log(*args)


def _writer_after_fork() -> Writer:
    global _writer, _inherited
    with _state_lock:
        if _writer is not None:
            return _writer
        if _inherited is None:
            raise MetranaNotInitializedError(
                "metrana.log() called before metrana.init() (or after metrana.close())"
            )
        config, session, handshake, steps = _inherited
        writer = Writer(config, session, handshake, steps, redirect=_redirect)
        if not session.dispatcher_alive():
            writer.check_dispatcher()
        writer.start_watchdog()
        _writer = writer
        _inherited = None
        _bind_log(writer)
        _register_atexit()
        return writer


def close(close_strategy: Any = None, timeout: float | None = None) -> None:
    """Close this process's writer.

    ``close_strategy`` (default: the one given to ``init()``) decides what happens to points
    not yet delivered; ``timeout`` (default ``METRANA_CLOSE_TIMEOUT``, 30 s) bounds the wait.

    Raises:
        MetranaNotInitializedError: nothing to close.
        MetranaTimeoutError: ``CompleteAll`` (or ``CompletePending``) did not finish in time;
            its ``pending`` attribute counts the points not delivered.
    """
    global _writer, _inherited
    with _state_lock:
        writer = _writer
        if writer is None or writer.closed:
            _inherited = None
            raise MetranaNotInitializedError("metrana.close() called without metrana.init()")
        strategy = writer.config.close_strategy
        if close_strategy is not None:
            parsed = parse_enum(CloseStrategy, close_strategy)
            if parsed is None:
                raise MetranaConfigError(
                    f"invalid close_strategy {close_strategy!r}; accepted values: "
                    f"{CloseStrategy.accepted()}"
                )
            strategy = parsed
        wait = writer.config.close_timeout if timeout is None else float(timeout)
        _closed_steps[str(writer.session.dir)] = writer.next_steps()
        try:
            writer.close(strategy, wait)
        finally:
            writer.release()
            _writer = None
            _bind_log(None)


def flush(timeout: float | None = None) -> None:
    """Block until every point this process logged before the call is delivered.

    Raises:
        MetranaNotInitializedError: nothing to flush.
        MetranaTimeoutError: ``timeout`` seconds passed first; ``pending`` says how many points
            were still undelivered.
    """
    writer = _writer
    if writer is None or writer.closed:
        raise MetranaNotInitializedError("metrana.flush() called without metrana.init()")
    writer.flush(timeout)


def stats() -> Stats:
    """A snapshot of counters for this process and for its whole session: logged, dropped (by
    reason), delivered, pending, ring fill; stored and duplicates as the dispatcher counts them.

    Raises:
        MetranaNotInitializedError: before ``init()`` or after ``close()``.
    """
    writer = _writer
    if writer is None or writer.closed:
        raise MetranaNotInitializedError("metrana.stats() called without metrana.init()")
    return Stats(process=writer.stats(), session=session_stats(writer.session.dir))


def _atexit_close() -> None:
    writer = _writer
    if writer is None or writer.closed or writer.pid != current_process().pid:
        return
    pending = writer.pending()
    if pending > 0 and writer.config.close_strategy is not CloseStrategy.IMMEDIATE:
        logger.warning(
            "metrana: at exit, %d points pending, waiting up to %.0f s (close strategy %s)",
            pending,
            writer.config.close_timeout,
            writer.config.close_strategy.value,
        )
    try:
        close()
    except MetranaError as error:
        logger.error("metrana: at exit: %s", error)


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(_atexit_close)
        _atexit_registered = True


def _after_fork_in_child() -> None:
    """A forked child must not touch its parent's ring, lock or threads."""
    global _writer, _inherited, _state_lock
    _state_lock = threading.Lock()
    _closed_steps.clear()
    writer = _writer
    _writer = None
    _bind_log(None)
    if writer is not None:
        writer.detach()  # a log() function kept from the parent comes here
        if not writer.closed:
            _inherited = (writer.config, writer.session, writer.handshake, writer.next_steps())


os.register_at_fork(after_in_child=_after_fork_in_child)


def _bind_log(writer: Writer | None) -> None:
    """``metrana.log`` is the writer's own log() while it is open (one call less per point),
    this module's :func:`log` otherwise. The writer's function sends calls it cannot take
    (closed, inherited through fork) back here, so a reference kept by the user stays right."""
    package = sys.modules.get("metrana")
    if package is None:
        return
    if writer is None:
        package.log = log  # type: ignore[attr-defined]
    else:
        package.log = functools.update_wrapper(writer.log, log)  # type: ignore[attr-defined]


def current_writer() -> Writer | None:
    """This process's open writer, if any (for stats and tests)."""
    return _writer
