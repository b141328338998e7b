"""The end of a writer's life and its counters: ``flush()``, ``close()`` with its strategy
(the CLOSE record, then the wait for the dispatcher), ``stats()``, and abandoning a ring that
``init()`` could not finish.

:class:`Closing` is the third layer of :class:`~metrana.writer._writer.Writer` (see that
module); ``Writer.__init__`` sets the state declared here."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .. import ring as _ring
from .._enums import CloseStrategy
from .._errors import MetranaTimeoutError
from .._logging import logger
from ..ring import close_record
from ..session import WriterStats, writer_stats
from ._watch import WATCHDOG_INTERVAL, Watch


class Closing(Watch):
    """Counters, flush and close."""

    _lock: threading.Lock  # around every append to the ring
    closed: bool
    declared: int  # series declarations appended to the ring
    _control_records: int  # the CLOSE record

    @property
    def logged(self) -> int:
        """Points this process appended to its ring (A0)."""
        return self.ring.written - self.declared - self._control_records + self._bulk_extra

    def stats(self) -> WriterStats:
        """This writer's counters."""
        return writer_stats(self.ring.meta, self.ring.writer_id, logged=self.logged)

    def pending(self) -> int:
        """Points this writer logged that the dispatcher has not yet committed."""
        return self.logged - self.ring.get_slot(_ring.M_COMMITTED_POINTS)

    def flush(self, timeout: float | None) -> None:
        """Wait until every point logged so far is delivered (or dropped and counted)."""
        target = self.logged
        deadline = None if timeout is None else time.monotonic() + timeout

        def timed_out() -> MetranaTimeoutError:
            pending = target - self.ring.get_slot(_ring.M_COMMITTED_POINTS)
            return MetranaTimeoutError(
                f"flush timed out after {timeout:.1f} s: {pending} points not yet delivered",
                pending,
            )

        self._wait(
            lambda: self.ring.get_slot(_ring.M_COMMITTED_POINTS) >= target, deadline, timed_out
        )

    def close(self, strategy: CloseStrategy, timeout: float) -> None:
        """Close this writer with ``strategy``; wait at most ``timeout`` seconds in all."""
        if self.closed:
            return
        self.closed = True
        self.detach()
        deadline = time.monotonic() + timeout
        with self._lock:
            ring = self.ring
            ring.set_slot(_ring.M_LOGGED, self.logged)
            ring.set_slot(_ring.M_CLOSE_STRATEGY, _ring.CLOSE_CODES[strategy])
            record = close_record(strategy.value)
            # The CLOSE record marks the end of the stream; the state slot alone suffices when
            # the ring is full and the strategy does not wait.
            while not ring.append(record):
                if strategy is CloseStrategy.IMMEDIATE or time.monotonic() >= deadline:
                    break
                time.sleep(0.001)
            else:
                self._control_records = 1
            ring.publish_written()
            ring.set_slot(_ring.M_BULK_EXTRA, self._bulk_extra)
            ring.set_slot(_ring.M_STATE, _ring.STATE_CLOSED)
        try:
            self._finish(strategy, deadline, timeout)
        finally:
            self._stop.set()
            for process in self._dispatchers:
                process.poll()
        self.raise_delivery_errors()

    def _finish(self, strategy: CloseStrategy, deadline: float, timeout: float) -> None:
        pending = self.pending()
        if strategy is CloseStrategy.IMMEDIATE:
            if pending:
                logger.warning("close (Immediate): discarding %d points not yet delivered", pending)
            return
        if pending:
            logger.info(
                "%d points pending, waiting up to %.0f s", pending, deadline - time.monotonic()
            )
        ring = self.ring

        def done() -> bool:
            if strategy is CloseStrategy.COMPLETE_ALL:
                return self.pending() <= 0
            return ring.get_slot(_ring.M_CLOSE_ACK) == 1

        def timed_out() -> MetranaTimeoutError:
            pending = self.pending()
            return MetranaTimeoutError(
                f"close ({strategy.value}) timed out after {timeout:.1f} s: "
                f"{pending} points were not delivered",
                pending,
            )

        self._wait(done, deadline, timed_out)
        discarded = ring.get_slot(_ring.M_DISCARDED)
        if discarded:
            logger.warning(
                "close (%s): %d points still queued were discarded", strategy.value, discarded
            )

    def _wait(
        self,
        done: Callable[[], bool],
        deadline: float | None,
        timed_out: Callable[[], MetranaTimeoutError],
    ) -> None:
        """Poll ``done`` with a growing pause (0.5 to 10 ms) and raise ``timed_out()`` past
        ``deadline``; every ``WATCHDOG_INTERVAL``, start a new dispatcher if none is alive."""
        delay = 0.0005
        next_check = time.monotonic() + WATCHDOG_INTERVAL
        while not done():
            now = time.monotonic()
            if deadline is not None and now > deadline:
                raise timed_out()
            if now > next_check:
                next_check = now + WATCHDOG_INTERVAL
                if not self.session.dispatcher_alive():
                    self.check_dispatcher()
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def abandon(self) -> None:
        """Remove this writer's ring without delivering anything (``init()`` failed)."""
        self.closed = True
        self.detach()
        self._stop.set()
        meta = self.ring.meta_path
        self.ring.close()
        for path in meta.parent.glob(f"w-{self.ring.writer_id}.*"):
            path.unlink(missing_ok=True)

    def release(self) -> None:
        """Unmap the ring (its files stay for the dispatcher)."""
        self.ring.close()
