"""A session whose dispatcher runs in a thread of the test process, and the helpers that reset
Metrana's process-global state or make one process act as a forked child of itself."""

from __future__ import annotations

import contextlib
import threading
import time
from types import TracebackType
from typing import Any

from .._config import resolve_config
from .._errors import MetranaError
from ..dispatcher._loop import Dispatcher
from ..dispatcher.targets import Target
from ..session import DispatcherInfo, Handshake, Session, current_process
from ..session._process import end_simulation, simulate_child
from ..writer import _run
from ..writer._writer import Writer
from ._capture import CapturingTarget

__all__ = ["InProcessSession", "reset", "simulate_fork"]


class InProcessSession:
    """A writer and a dispatcher in one process: ``metrana.init()`` joins a dispatcher that runs
    in a thread of this process and delivers to ``target`` (a :class:`CapturingTarget` by
    default), so a test of the logging path takes milliseconds and no process::

        with InProcessSession() as session:
            session.init(workspace_name="w", project_name="p", run_name="r")
            metrana.log("loss", 0.5, step=1)
            metrana.close()
        assert session.target.values("loss") == {1: 0.5}

    ``init(**kwargs)`` takes the arguments of ``metrana.init()``. Leaving the block closes a
    writer still open (``Immediate``), stops the dispatcher and waits for its thread. What
    needs real processes (fork, kill -9, a dispatcher restart) is not simulated here."""

    def __init__(self, target: Target | None = None, *, exit_grace: float = 0.05) -> None:
        self.target: Any = target if target is not None else CapturingTarget()
        self.exit_grace = exit_grace
        self.session: Session | None = None
        self.dispatcher: Dispatcher | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    def __enter__(self) -> InProcessSession:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        writer = _run.current_writer()
        if writer is not None and not writer.closed:
            with contextlib.suppress(MetranaError):
                _run.close(close_strategy="Immediate")
        self.stop()

    def init(self, **kwargs: Any) -> None:
        """Start this session's dispatcher thread for the run ``kwargs`` name, then call
        ``metrana.init(**kwargs)`` (which joins it)."""
        self.start(**kwargs)
        _run.init(**kwargs)

    def start(self, **kwargs: Any) -> Session:
        """Start the dispatcher thread for the run of ``metrana.init(**kwargs)``, without
        calling it (for tests that call ``init()`` themselves, maybe in several threads)."""
        if self._thread is not None:
            raise RuntimeError("this InProcessSession was already started")
        config = resolve_config(**kwargs)
        session = Session.for_config(config)
        session.write_config(config)
        self.session = session
        self._thread = threading.Thread(
            target=self._serve, args=(session, config), name="metrana-inprocess", daemon=True
        )
        self._thread.start()
        ready = self._ready.wait(10)
        if self._failure is not None:
            raise self._failure
        if not ready:
            raise TimeoutError("the in-process dispatcher did not open the run within 10 s")
        return session

    @staticmethod
    def _await_first_ring(session: Session, stopping: threading.Event) -> None:
        """Wait (at most 10 s) for ``init()`` to make its ring: a real dispatcher is spawned
        after it, while this one's thread starts before; with no ring in sight it would end
        the run within its short exit grace, and the writer would then spawn a real one."""
        deadline = time.monotonic() + 10
        while not session.ring_ids() and time.monotonic() < deadline:
            if stopping.wait(0.001):
                return

    def _serve(self, session: Session, config: Any) -> None:
        lock = session.dispatcher_lock()
        try:
            lock.acquire(timeout=5)
            try:
                process = current_process()
                session.write_info(DispatcherInfo(process.pid, process.create_ms, time.time_ns()))
                handle = self.target.open_run(config)
                session.write_handshake(
                    Handshake(
                        status="ready",
                        dispatcher_pid=process.pid,
                        experiment_id=handle.experiment_id,
                        resume=handle.resume,
                    )
                )
                self.dispatcher = Dispatcher(
                    session, config, self.target, exit_grace=self.exit_grace, manage_gc=False
                )
                self._ready.set()
                self._await_first_ring(session, self.dispatcher.stopping)
                self.dispatcher.run()
            finally:
                # (no test teardown may take this process for a dispatcher to kill)
                session.info_path.unlink(missing_ok=True)
                lock.release()
        except BaseException as error:
            self._failure = error
            self._ready.set()

    def wait_exit(self, timeout: float = 10.0) -> None:
        """Wait for the dispatcher to end by itself (every writer closed, ``exit_grace`` over)."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the in-process dispatcher did not exit within {timeout} s")
        if self._failure is not None:
            raise self._failure

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the dispatcher now and wait for its thread."""
        if self.dispatcher is not None:
            self.dispatcher.stop()
        self.wait_exit(timeout)


def reset() -> None:
    """Forget Metrana's process-global state, as a fresh process would have it: close an open
    writer without waiting (``Immediate``), drop what a simulated fork left, and take back
    this process's real identity. For test fixtures."""
    writer = _run.current_writer()
    if writer is not None and not writer.closed:
        with contextlib.suppress(MetranaError):
            _run.close(close_strategy="Immediate", timeout=5)
    _run._inherited = None
    _run._closed_steps.clear()
    end_simulation()


def simulate_fork() -> Writer | None:
    """Make this process act as a forked child of itself: it takes a new process identity
    (pid and create time) and Metrana runs its after-fork handling, so the next ``log()`` opens
    the child's own ring in the session, without a new handshake. Returns the parent's writer
    (detached now, as a child's copy of it is); a test closes it with
    ``parent.close(strategy, timeout)`` as the parent would. :func:`reset` ends the
    simulation."""
    parent = _run.current_writer()
    simulate_child()
    _run._after_fork_in_child()
    return parent
