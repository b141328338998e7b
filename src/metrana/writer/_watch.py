"""The writer's watch over its session: the watchdog thread (it publishes how far the ring is
written, looks for the dispatcher and starts a new one when none is alive) and the delivery
errors the dispatcher publishes, surfaced as the error strategy says.

:class:`Watch` is the second layer of :class:`~metrana.writer._writer.Writer` (see that
module); ``Writer.__init__`` sets the state declared here."""

from __future__ import annotations

import subprocess
import threading
import time

from .. import ring as _ring
from .._config import Config
from .._enums import ErrorStrategy
from .._errors import MetranaDeliveryError, MetranaDispatcherError
from .._logging import logger
from ..session import (
    DeliveryErrorEntry,
    ErrorWatcher,
    Session,
    current_process,
    ensure_dispatcher,
)
from ._series import SeriesTable

WATCHDOG_INTERVAL = 0.5
IDLE_WATCHDOG_INTERVAL = 5.0
ERROR_POLL_INTERVAL = 0.1


class Watch(SeriesTable):
    """Dispatcher supervision and delivery errors."""

    config: Config
    session: Session
    ring: _ring.RingWriter
    pid: int
    _dispatchers: list[subprocess.Popen[bytes]]
    _stop: threading.Event
    _watchdog: threading.Thread | None
    _errors: ErrorWatcher
    _errors_lock: threading.Lock  # the watchdog and close() both poll
    delivery_errors: list[DeliveryErrorEntry]
    _bulk_extra: int  # points beyond one per bulk record appended (published here)

    # -- dispatcher supervision ---------------------------------------------------------------

    def check_dispatcher(self) -> None:
        """Start a replacement dispatcher if none is alive; reap exited ones."""
        self._dispatchers = [p for p in self._dispatchers if p.poll() is None]
        try:
            process = ensure_dispatcher(self.session, self.config, self.config.init_timeout)
        except (MetranaDispatcherError, OSError) as error:
            logger.error("could not restart the dispatcher: %s", error)
            return
        if process is not None:
            logger.warning(
                "the dispatcher was not running; started a new one (pid %d)", process.pid
            )
            self._dispatchers.append(process)

    def adopt(self, process: subprocess.Popen[bytes] | None) -> None:
        """Keep the dispatcher this process started, to reap it when it exits."""
        if process is not None:
            self._dispatchers.append(process)

    def start_watchdog(self) -> None:
        """Start the watchdog thread (a daemon; it stops with :meth:`close`)."""
        thread = threading.Thread(target=self._watch, name="metrana-watchdog", daemon=True)
        self._watchdog = thread
        thread.start()

    def _watch(self) -> None:
        last_check = time.monotonic()
        interval = ERROR_POLL_INTERVAL
        last_written = -1
        while not self._stop.wait(interval):
            if current_process().pid != self.pid:
                return
            try:
                self.poll_errors()
                written = self.ring.written
                active = written != last_written
                # An idle writer (an evaluator, a parked worker) wakes less and less often, up
                # to once a second, and looks for the dispatcher every few seconds (nothing of
                # its own waits for it); the first log() after it brings the pace back.
                interval = ERROR_POLL_INTERVAL if active else min(interval * 2, 1.0)
                last_written = written
                self.ring.publish_written()
                self.ring.meta[_ring.M_BULK_EXTRA] = self._bulk_extra
                period = WATCHDOG_INTERVAL if active else IDLE_WATCHDOG_INTERVAL
                if time.monotonic() < last_check + period:
                    continue
                last_check = time.monotonic()
                if not self.session.dispatcher_alive():
                    self.check_dispatcher()
                else:
                    self._dispatchers = [p for p in self._dispatchers if p.poll() is None]
            except Exception as error:  # the watchdog must never kill the process
                logger.debug("watchdog: %s", error)

    # -- delivery errors ------------------------------------------------------------------------

    def poll_errors(self) -> None:
        """Act on delivery errors the dispatcher published since the last look."""
        with self._errors_lock:
            fresh = self._errors.new_errors()
            if not fresh:
                return
            strategy = self.config.error_strategy
            self.delivery_errors.extend(fresh)
            if strategy is ErrorStrategy.WARN:
                for entry in fresh:
                    logger.warning("delivery error (%s): %s", entry.kind, entry.message)
            elif strategy is ErrorStrategy.RAISE_ON_LOG:
                # Errors not yet raised accumulate: the next log() raises them all (emptying
                # the table of plain series sends it through _route).
                self._unraised.extend(entry.message for entry in fresh)
                self._plain.clear()

    def _raise_unraised(self) -> None:
        """RaiseOnLog: raise the errors published since the last log() (unless another
        thread's call just did)."""
        with self._errors_lock:
            messages, self._unraised = self._unraised, []
        if not messages:
            return
        raise MetranaDeliveryError(
            f"the dispatcher could not deliver data: {'; '.join(messages)} "
            "(this point was not logged; later ones are)"
        )

    def raise_delivery_errors(self) -> None:
        """Error strategy RaiseOnClose: raise what was published during this writer's life,
        each error with how often it happened (as the channel counts it now)."""
        self.poll_errors()
        if self.config.error_strategy is ErrorStrategy.RAISE_ON_CLOSE and self.delivery_errors:
            counts = self._errors.counts()
            details = "; ".join(
                f"{entry.message} (x{max(entry.count, counts.get(entry.id, 0))})"
                for entry in self.delivery_errors
            )
            raise MetranaDeliveryError(f"the dispatcher could not deliver data: {details}")
