"""The writer: this process's side of a session. ``log()`` validates, interns the series,
encodes one record and appends it to this process's ring; it never does I/O."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .. import ring as _ring
from .._config import Config
from .._enums import BackpressureStrategy, CloseStrategy, ErrorStrategy
from .._errors import (
    MetranaDeliveryError,
    MetranaDispatcherError,
    MetranaEventQueueFullError,
    MetranaInvalidMetricError,
    MetranaInvalidMetricTypeError,
    MetranaNotInitializedError,
    MetranaTimeoutError,
)
from .._identity import (
    I64_MAX,
    I64_MIN,
    check_labels,
    check_metric_name,
    check_scale,
    check_step,
    check_timestamp,
    check_value,
    labels_json,
)
from .._logging import logger
from ..ring import POINT, close_record, declare_record, encoder, ring_record
from ..session import (
    DeliveryErrorEntry,
    ErrorWatcher,
    Handshake,
    Session,
    WriterStats,
    current_process,
    ensure_dispatcher,
    writer_stats,
)

_time_ns = time.time_ns
_generation = 0

WATCHDOG_INTERVAL = 0.5
IDLE_WATCHDOG_INTERVAL = 5.0
ERROR_POLL_INTERVAL = 0.1


class _Series:
    __slots__ = ("declared", "id", "labels", "logged_declaration", "name", "next_step", "scale")

    def __init__(self, series_id: int, name: str, scale: str, labels: dict[str, str]) -> None:
        self.id = series_id
        self.name = name
        self.scale = scale
        self.labels = labels
        self.next_step = 0
        self.declared = False
        self.logged_declaration = False


class Writer:
    """This process's writer: one ring in the session, one lock around appends."""

    def __init__(
        self,
        config: Config,
        session: Session,
        handshake: Handshake | None = None,
        next_steps: dict[tuple[str, str, str], int] | None = None,
        redirect: Callable[[Writer, tuple[Any, ...]], None] | None = None,
    ) -> None:
        """``redirect`` takes the calls of a kept ``log()`` function once this writer is
        detached (closed, or a forked child's copy of its parent's): ``metrana.log`` of the
        process's current writer."""
        global _generation
        _generation += 1
        self.config = config
        self.session = session
        self.handshake = handshake or Handshake(status="pending", dispatcher_pid=0)
        process = current_process()
        self.pid = process.pid
        create_ms = process.create_ms
        self.ring = _ring.RingWriter(
            session.dir,
            f"{self.pid}-{create_ms}-{_generation}",
            self.pid,
            create_ms,
            config.event_queue_max_size,
        )
        self._append = self.ring.append
        rank = os.environ.get("RANK") or os.environ.get("LOCAL_RANK")
        if rank is not None and rank.isdigit():
            self.ring.meta[_ring.M_RANK] = int(rank) + 1
        self._lock = threading.Lock()
        self._encode = encoder.encode
        self._plain: dict[str, _Series] = {}
        self._by_key: dict[Any, _Series] = {}
        self._canonical: dict[tuple[str, str, str], _Series] = {}
        self._resume: dict[tuple[str, str, str], int] = {}
        if handshake is not None:
            self.apply_handshake(handshake)
        if next_steps:
            self.carry_steps(next_steps)
        self._backpressure = config.backpressure_strategy
        self.dropped = 0
        self.declared = 0
        self._control_records = 0  # the CLOSE record
        self._warned_drop = False
        self.closed = False
        self._dispatchers: list[subprocess.Popen[bytes]] = []
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._errors = ErrorWatcher(session.dir)
        self._errors_lock = threading.Lock()  # the watchdog and close() both poll
        self.delivery_errors: list[DeliveryErrorEntry] = []
        self._unraised: list[str] = []  # RaiseOnLog: messages the next log() raises
        self._detached = False
        self._redirect = redirect
        self.log: Callable[..., None] = self._make_log()

    def apply_handshake(self, handshake: Handshake) -> None:
        """Take the run's resume table: auto-incremented steps continue after stored ones."""
        self.handshake = handshake
        self.apply_resume(handshake.resume)

    def apply_resume(self, table: list[tuple[str, str, str, int]]) -> None:
        """Auto-incremented steps continue after the last step of each series in ``table``."""
        for name, scale, labels, last in table:
            key = (name, scale, labels)
            self._resume[key] = max(self._resume.get(key, 0), last + 1)

    def carry_steps(self, next_steps: dict[tuple[str, str, str], int]) -> None:
        """Continue auto-incremented steps from an earlier writer of this process."""
        for key, step in next_steps.items():
            if step > self._resume.get(key, 0):
                self._resume[key] = step

    def abandon(self) -> None:
        """Remove this writer's ring without delivering anything (``init()`` failed)."""
        self.closed = True
        self.detach()
        self._stop.set()
        meta = self.ring.meta_path
        self.ring.close()
        for path in meta.parent.glob(f"w-{self.ring.writer_id}.*"):
            path.unlink(missing_ok=True)

    # -- the hot path -------------------------------------------------------------------------

    def _make_log(self) -> Callable[..., None]:
        """The hot path of ``log()``, as a closure over everything it touches (locals are
        cheaper than attributes). Scalars take the straight line; dicts of metrics and
        sequences of values go to :meth:`_log_many` and :meth:`_log_values`."""
        plain = self._plain
        route = self._route
        encode = self._encode
        append = self._append
        full = self._full
        declare = self._declare
        acquire = self._lock.acquire
        release = self._lock.release
        time_ns = _time_ns
        log_values = self._log_values

        def log(
            metric_name: Any,
            value: Any = None,
            scale: Any = None,
            step: Any = None,
            labels: Any = None,
            timestamp: Any = None,
        ) -> None:
            series: _Series | None
            if scale is None and labels is None:
                try:
                    series = plain[metric_name]
                except (KeyError, TypeError):  # new, or a dict of metrics, or see _route
                    series = route(metric_name, value, scale, step, labels, timestamp)
                    if series is None:
                        return None
            else:
                series = route(metric_name, value, scale, step, labels, timestamp)
                if series is None:
                    return None
            kind = type(value)
            if kind is not float:
                if kind is int:
                    # (as for steps below: only ints beyond 2**30 pay the 64-bit comparisons)
                    if (value > 0x3FFFFFFF or value < -0x3FFFFFFF) and not (
                        I64_MIN <= value <= I64_MAX
                    ):
                        value = check_value(value)  # (raises)
                elif kind is list or kind is tuple or getattr(value, "ndim", 0) > 0:
                    return log_values(series, value, step, timestamp)
                else:
                    value = check_value(value)
            if timestamp is None:
                timestamp = time_ns()
            elif type(timestamp) is not int or timestamp < 0 or timestamp > I64_MAX:
                timestamp = check_timestamp(timestamp)
            # (most steps are below 2**30, where int comparisons take the interpreter's fast
            # path: only larger ones pay the comparison with 2**63 - 1)
            if step is not None and (
                type(step) is not int or step < 0 or (step > 0x3FFFFFFF and step > I64_MAX)
            ):
                step = check_step(step)
            acquire()
            try:
                if not series.declared and not declare(series):
                    return None
                if step is None:
                    step = series.next_step
                # the record is the tuple without its array header: see _records
                record = encode((POINT, series.id, step, value, timestamp))[1:]
                if (append(record) or full(record)) and step >= series.next_step:
                    series.next_step = step + 1
            finally:
                release()
            return None

        return log

    def _route(
        self,
        metric_name: Any,
        value: Any,
        scale: Any,
        step: Any,
        labels: Any,
        timestamp: Any,
    ) -> _Series | None:
        """Everything ``log()`` does not find in its table of plain series: the series of a
        new name, or of a name with a scale or labels; a dict of metrics (logged here, None);
        a writer that is closed or was inherited through fork (the call goes to this
        process's current writer, None); delivery errors to raise (RaiseOnLog)."""
        if self._detached:
            if self._redirect is None:
                raise MetranaNotInitializedError("metrana.log() called on a closed writer")
            self._redirect(self, (metric_name, value, scale, step, labels, timestamp))
            return None
        if self._unraised:
            self._raise_unraised()
        if type(metric_name) is not str:
            self._log_many(metric_name, value, scale, step, labels, timestamp)
            return None
        return self._series(metric_name, scale, labels)

    def detach(self) -> None:
        """This writer takes no more points: closed, or this is a forked child's copy of its
        parent's. A log() function kept from it sends its calls to ``metrana.log``."""
        self._detached = True
        self._plain.clear()

    def _log_many(
        self,
        metrics: Any,
        value: Any,
        scale: Any,
        step: Any,
        labels: Any,
        timestamp: Any,
    ) -> None:
        """``log({"loss": l, "acc": a}, step=…)``: several metrics at one step. Every name and
        value is checked before the first is logged."""
        if not isinstance(metrics, Mapping):
            raise MetranaInvalidMetricTypeError(
                f"metric_name must be a str (or a dict of metric names to values), got "
                f"{type(metrics).__name__}: {metrics!r}"
            )
        if value is not None:
            raise MetranaInvalidMetricTypeError(
                "log(dict, ...) takes each value from the dict; do not pass value as well"
            )
        checked = []
        for name, item in metrics.items():
            check_metric_name(name)
            if isinstance(item, list | tuple) or getattr(item, "ndim", 0) > 0:
                raise MetranaInvalidMetricTypeError(
                    f"log(dict) takes one value per metric; {name!r} has a sequence "
                    "(log it on its own: log(name, values, step=...))"
                )
            checked.append((name, item if type(item) is float else check_value(item)))
        for name, item in checked:
            self.log(name, item, scale, step, labels, timestamp)

    def _log_values(self, series: _Series, values: Any, step: Any, timestamp: Any) -> None:
        """A list, tuple or 1-D NumPy array: consecutive points from ``step`` (or from the
        series' next step), all with one timestamp. Nothing is logged if any value is bad."""
        ndim = getattr(values, "ndim", None)
        if ndim is not None:
            if ndim != 1:
                raise MetranaInvalidMetricTypeError(
                    f"an array value must be 1-D (consecutive steps), got {ndim}-D"
                )
            values = values.tolist()
        checked = [v if type(v) is float else check_value(v) for v in values]
        timestamp = _time_ns() if timestamp is None else check_timestamp(timestamp)
        if step is not None:
            step = check_step(step)
            if checked and step + len(checked) - 1 > I64_MAX:
                raise MetranaInvalidMetricError(
                    f"step must be below 2**63 for every value: {len(checked)} values from step "
                    f"{step} would end at step {step + len(checked) - 1}; start them earlier"
                )
        encode = self._encode
        with self._lock:
            if not checked or (not series.declared and not self._declare(series)):
                return
            first = series.next_step if step is None else step
            for offset, value in enumerate(checked):
                at = first + offset
                record = encode((POINT, series.id, at, value, timestamp))[1:]
                if (self._append(record) or self._full(record)) and at >= series.next_step:
                    series.next_step = at + 1

    def last_step(self, metric_name: str, scale: Any = None, labels: Any = None) -> int | None:
        """The last step of a series as this process knows it (logged here, or resumed)."""
        series = self._series(metric_name, scale, labels)
        return series.next_step - 1 if series.next_step > 0 else None

    # -- series interning -------------------------------------------------------------------------

    def _series(self, metric_name: str, scale: Any, labels: Any) -> _Series:
        if labels is None:
            key: Any = (metric_name, scale)
        elif isinstance(labels, dict):
            try:
                key = (metric_name, scale, tuple(sorted(labels.items())))
            except TypeError:
                key = None
        else:
            key = None
        series = self._by_key.get(key) if key is not None else None
        if series is not None:
            if scale is None and labels is None:
                self._remember_plain(metric_name, series)  # again, after the table was emptied
            return series
        name = check_metric_name(metric_name)
        canonical = (name, check_scale(scale), labels_json(check_labels(labels)))
        series = self._canonical.get(canonical)
        if series is None:
            series = _Series(len(self._canonical), name, canonical[1], check_labels(labels))
            series.next_step = self._resume.get(canonical, 0)
            self._canonical[canonical] = series
        if key is not None:
            self._by_key[key] = series
            if scale is None and labels is None:
                self._remember_plain(metric_name, series)
        return series

    def _remember_plain(self, metric_name: str, series: _Series) -> None:
        """Put a name in log()'s table of plain series, unless log() must take _route now:
        errors to raise or a detached writer. (Checked after the store: poll_errors and detach
        set their flag before they empty the table, so one of the two always sees the other.)"""
        self._plain[metric_name] = series
        if self._unraised or self._detached:
            self._plain.pop(metric_name, None)

    def _declare(self, series: _Series) -> bool:
        """Append the series declaration (under the lock) before its first point.

        False when it was dropped (the point is then dropped with it, counted once)."""
        declaration = declare_record(series.id, series.name, series.scale, series.labels)
        if not series.logged_declaration:
            self.ring.declarations.append(declaration)
            series.logged_declaration = True
        record = ring_record(declaration)
        if self.ring.append(record) or self._full(record):
            series.declared = True
            self.declared += 1
            self.ring.meta[_ring.M_DECLARED] = self.declared
        return series.declared

    def next_steps(self) -> dict[tuple[str, str, str], int]:
        """Auto-increment state, for a forked child to continue from."""
        steps = dict(self._resume)
        steps.update({key: s.next_step for key, s in self._canonical.items()})
        return steps

    # -- backpressure -------------------------------------------------------------------------

    def _full(self, record: bytes) -> bool:
        """The ring is full: apply the backpressure strategy. True if the record was appended."""
        strategy = self._backpressure
        if strategy is BackpressureStrategy.RAISE:
            raise MetranaEventQueueFullError(
                f"the event queue of this process is full ({self.config.event_queue_max_size} "
                "events, METRANA_EVENT_QUEUE_MAX_SIZE); the dispatcher is not keeping up or "
                "not running. Raise the size, log less, or use backpressure_strategy='Block'"
            )
        if strategy is BackpressureStrategy.BLOCK:
            return self._block(record)
        self.dropped += 1
        self.ring.meta[_ring.M_DROPPED] = self.dropped
        if not self._warned_drop:
            self._warned_drop = True
            logger.warning(
                "event queue full (%d events): dropping new points (backpressure DropNew); "
                "drops are counted in metrana.stats()",
                self.config.event_queue_max_size,
            )
        return False

    def _block(self, record: bytes) -> bool:
        deadline = time.monotonic() + self.config.block_timeout
        delay = 0.0002
        next_check = time.monotonic() + WATCHDOG_INTERVAL
        while True:
            time.sleep(delay)
            if self.ring.append(record):
                return True
            now = time.monotonic()
            if now > deadline:
                raise MetranaEventQueueFullError(
                    "the event queue of this process stayed full "
                    f"({self.config.event_queue_max_size} events) for "
                    f"{self.config.block_timeout:.0f} s "
                    "(METRANA_BLOCK_TIMEOUT) with backpressure_strategy='Block'; "
                    f"the dispatcher is not draining it (see {self.session.log_path})"
                )
            if now > next_check:
                next_check = now + WATCHDOG_INTERVAL
                self.check_dispatcher()
            delay = min(delay * 2, 0.01)

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
        if process is not None:
            self._dispatchers.append(process)

    def start_watchdog(self) -> None:
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

    # -- close ----------------------------------------------------------------------------------

    @property
    def logged(self) -> int:
        """Points this process appended to its ring (A0)."""
        return self.ring.written - self.declared - self._control_records

    def stats(self) -> WriterStats:
        """This writer's counters."""
        return writer_stats(self.ring.meta, self.ring.writer_id, logged=self.logged)

    def flush(self, timeout: float | None) -> None:
        """Wait until every point logged so far is delivered (or dropped and counted)."""
        target = self.logged
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        next_check = time.monotonic() + WATCHDOG_INTERVAL
        while self.ring.get_slot(_ring.M_COMMITTED_POINTS) < target:
            now = time.monotonic()
            if deadline is not None and now > deadline:
                pending = target - self.ring.get_slot(_ring.M_COMMITTED_POINTS)
                raise MetranaTimeoutError(
                    f"flush timed out after {timeout:.1f} s: {pending} points not yet delivered",
                    pending,
                )
            if now > next_check:
                next_check = now + WATCHDOG_INTERVAL
                if not self.session.dispatcher_alive():
                    self.check_dispatcher()
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def pending(self) -> int:
        """Points this writer logged that the dispatcher has not yet committed."""
        return self.logged - self.ring.get_slot(_ring.M_COMMITTED_POINTS)

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
        next_check = time.monotonic() + WATCHDOG_INTERVAL
        delay = 0.0005
        ring = self.ring
        while True:
            if strategy is CloseStrategy.COMPLETE_ALL:
                done = self.pending() <= 0
            else:
                done = ring.get_slot(_ring.M_CLOSE_ACK) == 1
            if done:
                break
            now = time.monotonic()
            if now > deadline:
                pending = self.pending()
                raise MetranaTimeoutError(
                    f"close ({strategy.value}) timed out after {timeout:.1f} s: "
                    f"{pending} points were not delivered",
                    pending,
                )
            if now > next_check:
                next_check = now + WATCHDOG_INTERVAL
                if not self.session.dispatcher_alive():
                    self.check_dispatcher()
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
        discarded = ring.get_slot(_ring.M_DISCARDED)
        if discarded:
            logger.warning(
                "close (%s): %d points still queued were discarded", strategy.value, discarded
            )

    def release(self) -> None:
        """Unmap the ring (its files stay for the dispatcher)."""
        self.ring.close()
