"""Entry point of the dispatcher process: election, handshake, then the drain loop."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import filelock

from .._errors import MetranaConfigError, MetranaRunExistsError, TargetUnreachableError
from .._logging import configure, logger
from ..session import DispatcherInfo, Handshake, Session, current_process
from ..storage import RunHandle
from ._loop import Dispatcher
from ._spool import Spool, spool_root
from .targets import make_target

LOCK_TIMEOUT = 1.0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m metrana.dispatcher SESSION_DIR", file=sys.stderr)
        return 2
    session = Session(Path(args[0]))
    lock = session.dispatcher_lock()
    try:
        lock.acquire(timeout=LOCK_TIMEOUT)
    except filelock.Timeout:
        return 0  # another dispatcher won the election
    try:
        return _run(session)
    finally:
        lock.release()


def _run(session: Session) -> int:
    import os

    pid = os.getpid()
    session.write_info(
        DispatcherInfo(pid=pid, create_ms=current_process().create_ms, started_ns=time.time_ns())
    )
    config = session.read_config()
    configure(config.log_level)
    for handler in logger.handlers:
        handler.setFormatter(
            logging.Formatter("%(asctime)s dispatcher %(process)d %(levelname)s: %(message)s")
        )
    spooling = False
    # Set by SIGTERM: every wait of the loop and of the target's retries ends at once.
    stopping = threading.Event()
    try:
        target = make_target(config, stop=stopping)
        try:
            handle = target.open_run(config)
        except TargetUnreachableError as error:
            previous = session.read_previous_handshake()
            if previous is None or previous.experiment_id is None or config.is_embedded:
                raise
            # This dispatcher replaces one that had opened the run: carry on with that run,
            # spooling, rather than leave the writers without a dispatcher during an outage.
            logger.warning(
                "%s; carrying on with run %d as opened by the previous dispatcher, spooling "
                "until the target answers",
                error,
                previous.experiment_id,
            )
            target.adopt(previous.experiment_id)
            handle = RunHandle(
                experiment_id=previous.experiment_id, created=False, resume=previous.resume
            )
            spooling = True
    except (MetranaRunExistsError, MetranaConfigError) as error:
        kind = "run_exists" if isinstance(error, MetranaRunExistsError) else "config"
        session.write_handshake(
            Handshake(status="failed", dispatcher_pid=pid, error=str(error), error_kind=kind)
        )
        logger.error("%s", error)
        return 1
    except Exception as error:
        logger.exception("handshake failed")
        session.write_handshake(
            Handshake(
                status="failed",
                dispatcher_pid=pid,
                error=f"the dispatcher could not open the run: {error}",
                error_kind="internal",
            )
        )
        return 1
    session.write_handshake(
        Handshake(
            status="ready",
            dispatcher_pid=pid,
            experiment_id=handle.experiment_id,
            resume=handle.resume,
        )
    )
    logger.info("run %s ready (experiment %d)", config.run.run_name, handle.experiment_id)
    spool = None
    if not config.is_embedded:
        spool = Spool(spool_root(config.home) / session.dir.name)
        spool.acquire(timeout=30)
        spool.write_run(config)
    dispatcher = Dispatcher(session, config, target, spool, spooling=spooling, stop=stopping)

    def stop(signum: int, frame: FrameType | None) -> None:
        logger.info("signal %d: stopping", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the job's terminal is for the job
    try:
        dispatcher.run()
    finally:
        target.close()
        if spool is not None:
            spool.release()
    return 0
