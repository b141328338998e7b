"""The election: writers start the session's dispatcher when none holds its lock, and wait
for its handshake. The dispatcher is a detached ``python -m metrana.dispatcher`` (never a fork
of the caller)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

from .._config import Config
from .._errors import (
    DispatcherVanishedError,
    MetranaConfigError,
    MetranaDispatcherError,
    MetranaRunExistsError,
)
from .._files import read_struct
from ._session import Handshake, Session

__all__ = ["ensure_dispatcher", "join", "wait_handshake"]


def ensure_dispatcher(
    session: Session, config: Config, timeout: float
) -> subprocess.Popen[bytes] | None:
    """Start a dispatcher unless one is alive; return the process if this call started it.

    Writers decide under ``spawn.lock``, so a crowd of ranks starting at once yields one
    dispatcher. The dispatcher is a detached ``python -m metrana.dispatcher`` (never a fork
    of the caller) and is waited for until it holds its lock.
    """
    import filelock

    with filelock.FileLock(str(session.spawn_lock_path), timeout=timeout):
        if session.dispatcher_alive():
            return None
        # Kept for the successor: if the target is unreachable when it starts, it carries
        # on with the run its predecessor opened (spooling) instead of failing.
        with contextlib.suppress(FileNotFoundError):
            os.replace(session.handshake_path, session.previous_handshake_path)
        with contextlib.suppress(FileNotFoundError):
            session.info_path.unlink()
        session.write_config(config)
        process = _spawn(session)
        deadline = time.monotonic() + timeout
        while True:
            info = session.read_info()
            if info is not None and info.pid == process.pid:
                return process
            code = process.poll()
            if code is not None and code < 0:
                raise DispatcherVanishedError(
                    f"the dispatcher was killed (signal {-code}) before taking its lock"
                )
            if code is not None:
                raise MetranaDispatcherError(
                    f"the dispatcher exited with code {code} before taking its lock; "
                    f"its log: {session.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise MetranaDispatcherError(
                    f"the dispatcher did not start within {timeout:.0f} s; "
                    f"its log: {session.log_tail()}"
                )
            time.sleep(0.002)


# Every dispatcher this process started, until it has exited and been reaped. A dispatcher
# outlives the writer that started it (it drains the rings after close()), so its Popen must
# not be collected while it runs: the collector would warn "subprocess is still running".
_started: list[subprocess.Popen[bytes]] = []


def _spawn(session: Session) -> subprocess.Popen[bytes]:
    _started[:] = [process for process in _started if process.poll() is None]
    log = open(session.log_path, "ab")  # noqa: SIM115 - handed to the child
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "metrana.dispatcher", str(session.dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        log.close()
    _started.append(process)
    return process


def join(
    session: Session, config: Config, timeout: float
) -> tuple[subprocess.Popen[bytes] | None, Handshake]:
    """Make sure a dispatcher runs and answer its handshake.

    A dispatcher killed before its handshake (a signal, the OOM killer) is replaced until
    ``timeout``; one that fails on its own (its handshake says why, or it exits with an
    error) is reported at once."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        remaining = max(0.5, deadline - time.monotonic())
        try:
            process = ensure_dispatcher(session, config, remaining)
            return process, wait_handshake(session, remaining, process)
        except DispatcherVanishedError as vanished:
            attempt += 1
            if time.monotonic() > deadline:
                raise MetranaDispatcherError(
                    f"{vanished}; gave up after {attempt} dispatchers; "
                    f"its log ({session.log_path}): {session.log_tail()}"
                ) from None


def _answer(handshake: Handshake) -> Handshake:
    """A ready handshake, or the error its refusal names."""
    if handshake.status == "ready":
        return handshake
    message = handshake.error or "the dispatcher could not open the run"
    if handshake.error_kind == "run_exists":
        raise MetranaRunExistsError(message)
    if handshake.error_kind == "config":
        raise MetranaConfigError(message)
    raise MetranaDispatcherError(message)


def wait_handshake(
    session: Session, timeout: float, process: subprocess.Popen[bytes] | None
) -> Handshake:
    """Wait for the live dispatcher's handshake; raise if it failed or never came."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    next_liveness = time.monotonic() + 0.05
    while True:
        handshake = session.read_handshake()
        if handshake is not None:
            return _answer(handshake)
        if process is not None and process.poll() is not None:
            if session.read_handshake() is not None:
                continue  # written just before it exited (say, a refusal): read it above
            previous = read_struct(session.previous_handshake_path, Handshake)
            if previous is not None and previous.dispatcher_pid == process.pid:
                # Its answer was moved aside by another writer that started a successor
                # after it exited: it is still this dispatcher's answer.
                return _answer(previous)
            if process.returncode < 0:
                raise DispatcherVanishedError(
                    f"the dispatcher was killed (signal {-process.returncode}) before its handshake"
                )
            raise MetranaDispatcherError(
                f"the dispatcher exited with code {process.returncode} before its "
                f"handshake; its log: {session.log_tail()}"
            )
        now = time.monotonic()
        if process is None and now >= next_liveness:
            next_liveness = now + 0.05
            if not session.dispatcher_alive() and session.read_handshake() is None:
                raise DispatcherVanishedError("the dispatcher died before its handshake")
        if now > deadline:
            raise MetranaDispatcherError(
                f"no handshake from the dispatcher within {timeout:.0f} s; "
                f"its log ({session.log_path}): {session.log_tail()}"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
