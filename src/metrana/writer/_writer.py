# Over 400 lines: log()'s hot path and its bulk paths (arrays, dicts, vectors) share the lock,
# the ring and backpressure; _bulk, _series, _watch and _close hold the rest of the writer.
"""The writer: this process's side of a session. ``log()`` validates, interns the series,
encodes one record and appends it to this process's ring; it never does I/O.

:class:`Writer` is built in layers, one module each, every layer using only those below it:
:class:`~._series.SeriesTable` (series interning and auto-steps), :class:`~._watch.Watch` (the
watchdog thread, dispatcher restarts, delivery errors), :class:`~._close.Closing` (counters,
flush and close), and this module: the writer's construction and the ``log()`` hot path with
its validation and backpressure. One object, so that ``log()`` binds the same methods and
tables it always did."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .. import ring as _ring
from .._config import Config
from .._enums import BackpressureStrategy
from .._errors import (
    MetranaEventQueueFullError,
    MetranaInvalidMetricError,
    MetranaInvalidMetricTypeError,
    MetranaNotInitializedError,
)
from .._identity import (
    I64_MAX,
    I64_MIN,
    check_step,
    check_timestamp,
    check_value,
)
from .._logging import logger
from ..ring import POINT, declare_record, encoder, ring_record
from ..session import ErrorWatcher, Handshake, Session, current_process
from ._bulk import checked_number, column_of, values_of
from ._close import Closing
from ._series import Series, SeriesRow
from ._watch import WATCHDOG_INTERVAL

_time_ns = time.time_ns
_generation = 0


def _check_last_step(first: int, count: int) -> None:
    """Raise unless ``count`` steps from ``first`` (a series' next step, or the step given)
    all stay at or below 2**63 - 1: the store and the wire take 64-bit steps only."""
    if count and first + count - 1 > I64_MAX:
        raise MetranaInvalidMetricError(
            f"step must be below 2**63 for every value: {count} value(s) from step {first} "
            f"would end at step {first + count - 1}; log them at earlier steps"
        )


def _metric_value(name: str, value: Any) -> int | float:
    """The checked value of metric ``name`` in ``log(dict)``: one number."""
    if isinstance(value, list | tuple) or getattr(value, "ndim", 0) > 0:
        raise MetranaInvalidMetricTypeError(
            f"log(dict) takes one value per metric; {name!r} has a sequence "
            "(log it on its own: log(name, values, step=...))"
        )
    return value if type(value) is float else checked_number(value)


class Writer(Closing):
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
        # The state of every layer, set here in one order (each layer declares what it uses).
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
        self._plain = {}
        self._by_key = {}
        self._canonical = {}
        self._rows = {}
        self._vector_rows = {}
        self._resume = {}
        if handshake is not None:
            self.apply_handshake(handshake)
        if next_steps:
            self.carry_steps(next_steps)
        self._backpressure = config.backpressure_strategy
        self.dropped = 0
        self.declared = 0
        self._bulk_extra = 0
        self._max_bulk_values = _ring.max_bulk_values(self.ring.capacity)
        self._control_records = 0
        self._warned_drop = False
        self.closed = False
        self._dispatchers = []
        self._stop = threading.Event()
        self._watchdog = None
        self._errors = ErrorWatcher(session.dir)
        self._errors_lock = threading.Lock()
        self.delivery_errors = []
        self._unraised = []
        self._detached = False
        self._redirect = redirect
        self.log: Callable[..., None] = self._make_log()

    def apply_handshake(self, handshake: Handshake) -> None:
        """Take the run's resume table: auto-incremented steps continue after stored ones."""
        self.handshake = handshake
        self.apply_resume(handshake.resume)

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
            series: Series | None
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
                    value = checked_number(value)
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
    ) -> Series | None:
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
        if type(metrics) is not dict and not isinstance(metrics, Mapping):
            raise MetranaInvalidMetricTypeError(
                f"metric_name must be a str (or a dict of metric names to values), got "
                f"{type(metrics).__name__}: {metrics!r}"
            )
        if value is not None:
            raise MetranaInvalidMetricTypeError(
                "log(dict, ...) takes each value from the dict; do not pass value as well"
            )
        names = tuple(metrics)
        row = self._rows.get(names) if scale is None and labels is None else None
        if row is None:
            if not names:
                return
            row = self._metrics_row(names, scale, labels)
        values = list(metrics.values())
        try:
            encoded = self._encode(values)
        except (TypeError, OverflowError):  # NumPy scalars; ints beyond 64 bits (checked below)
            encoded = b""
        if not row.all_floats(encoded):  # ints, or something to check and convert
            values = [_metric_value(name, item) for name, item in zip(names, values, strict=True)]
            encoded = self._encode(values)
        self._log_row(row, values, encoded, step, timestamp)

    def log_vector_env(
        self,
        metric_name: Any,
        values: Any,
        step: Any,
        label: Any,
        scale: Any,
        labels: Any,
        timestamp: Any,
    ) -> None:
        """One step of a vector of environments: ``values[i]`` in the series labelled
        ``label=i``, as one METRICS record (see :func:`metrana.log_vector_env`)."""
        if self._unraised:
            self._raise_unraised()
        column = column_of(values)
        if column is None:
            row_values = [v if type(v) is float else checked_number(v) for v in values]
        else:
            row_values = values_of(column)
        if not row_values:
            return
        row = self._vector_row(metric_name, scale, labels, label, len(row_values))
        self._log_row(row, row_values, self._encode(row_values), step, timestamp)

    def _log_row(
        self, row: SeriesRow, values: list[Any], encoded: bytes, step: Any, timestamp: Any
    ) -> None:
        """One checked value per series of ``row`` at one step (``values``, and ``encoded`` as
        a msgpack array): one METRICS record, appended, waiting or dropped as a whole (counted
        by its points). Without a step, the series' next steps must agree; when they do not,
        each series gets a point at its own."""
        # (the checks of log()'s hot path: a dict of metrics is a training step's call too)
        if timestamp is None:
            timestamp = _time_ns()
        elif type(timestamp) is not int or timestamp < 0 or timestamp > I64_MAX:
            timestamp = check_timestamp(timestamp)
        if step is not None and (type(step) is not int or step < 0 or step > I64_MAX):
            step = check_step(step)
        count = len(row.ids)
        if count > self._max_bulk_values // 2:  # (an id and a float take up to 14 bytes)
            raise MetranaInvalidMetricError(
                f"{count} metrics at one step are more than one record of this process's ring "
                f"takes: at most {self._max_bulk_values // 2} (a quarter of its "
                f"{self.ring.capacity} bytes; METRANA_EVENT_QUEUE_MAX_SIZE="
                f"{self.config.event_queue_max_size}); log them in parts, or raise "
                "METRANA_EVENT_QUEUE_MAX_SIZE"
            )
        self._lock.acquire()
        try:
            if not row.declared:
                for series in row.series:
                    if not series.declared and not self._declare(series, count):
                        return
                row.declared = True
            if step is None:
                step = row.series[0].next_step
                if any(series.next_step != step for series in row.series):
                    _check_last_step(max(series.next_step for series in row.series), 1)
                    self._log_row_points(row, values, timestamp)
                    return
                _check_last_step(step, 1)
            encode = self._encode
            record = b"".join((row.prefix, encode(step), encoded, encode(timestamp)))
            if self._append(record) or self._full(record, count):
                self._bulk_extra += count - 1  # (published by the watchdog, with the count)
                after = step + 1
                for series in row.series:
                    if after > series.next_step:
                        series.next_step = after
        finally:
            self._lock.release()

    def _log_row_points(self, row: SeriesRow, values: list[Any], timestamp: int) -> None:
        """``row``'s values as point records, each at its series' next step (under the lock)."""
        encode = self._encode
        for series, value in zip(row.series, values, strict=True):
            at = series.next_step
            record = encode((POINT, series.id, at, value, timestamp))[1:]
            if self._append(record) or self._full(record):
                series.next_step = at + 1

    def _log_values(self, series: Series, values: Any, step: Any, timestamp: Any) -> None:
        """A list, tuple, 1-D array or tensor: consecutive points from ``step`` (or from the
        series' next step), all with one timestamp, as one bulk record of raw float64 or
        int64 bytes (:mod:`._bulk`). Nothing is logged if any value is bad; the record is
        appended, waits or is dropped as a whole (counted by its points)."""
        column = column_of(values)
        if column is None:  # a list or tuple mixing ints, floats and other numbers
            return self._log_points(series, values, step, timestamp)
        kind, data, count = column
        timestamp = _time_ns() if timestamp is None else check_timestamp(timestamp)
        self._check_first_step(step, count)
        if count > self._max_bulk_values:
            raise MetranaInvalidMetricError(
                f"an array of {count} values is larger than one record of this process's ring "
                f"takes: at most {self._max_bulk_values} values (a quarter of its "
                f"{self.ring.capacity} bytes; METRANA_EVENT_QUEUE_MAX_SIZE="
                f"{self.config.event_queue_max_size}); log it in parts of at most "
                f"{self._max_bulk_values} values, or raise METRANA_EVENT_QUEUE_MAX_SIZE"
            )
        with self._lock:
            if not count or (not series.declared and not self._declare(series, count)):
                return
            if step is None:  # a given step was checked before the lock
                first = series.next_step
                _check_last_step(first, count)
            else:
                first = step
            record = self._encode((kind, series.id, first, data, timestamp))[1:]
            if self._append(record) or self._full(record, count):
                self._bulk_extra += count - 1  # (published by the watchdog, with the count)
                if first + count > series.next_step:
                    series.next_step = first + count

    @staticmethod
    def _check_first_step(step: Any, count: int) -> None:
        """``step`` is None or a step from which ``count`` steps stay below 2**63."""
        if step is not None:
            _check_last_step(check_step(step), count)

    def _log_points(self, series: Series, values: Any, step: Any, timestamp: Any) -> None:
        """A sequence mixing ints, floats and other real numbers: checked value by value,
        then one point record each (ints keep their type)."""
        checked = [v if type(v) is float else checked_number(v) for v in values]
        timestamp = _time_ns() if timestamp is None else check_timestamp(timestamp)
        self._check_first_step(step, len(checked))
        encode = self._encode
        with self._lock:
            if not checked or (not series.declared and not self._declare(series)):
                return
            if step is None:  # a given step was checked before the lock
                first = series.next_step
                _check_last_step(first, len(checked))
            else:
                first = step
            for offset, value in enumerate(checked):
                at = first + offset
                record = encode((POINT, series.id, at, value, timestamp))[1:]
                if (self._append(record) or self._full(record)) and at >= series.next_step:
                    series.next_step = at + 1

    def _declare(self, series: Series, points: int = 1) -> bool:
        """Append the series declaration (under the lock) before its first ``points`` points.

        False when it was dropped (the points are then dropped with it, counted once)."""
        declaration = declare_record(series.id, series.name, series.scale, series.labels)
        if not series.logged_declaration:
            self.ring.declarations.append(declaration)
            series.logged_declaration = True
        record = ring_record(declaration)
        if self.ring.append(record) or self._full(record, points):
            series.declared = True
            self.declared += 1
            self.ring.meta[_ring.M_DECLARED] = self.declared
        return series.declared

    # -- backpressure -------------------------------------------------------------------------

    def _full(self, record: bytes, points: int = 1) -> bool:
        """The ring is full: apply the backpressure strategy. True if the record (of
        ``points`` points) was appended."""
        strategy = self._backpressure
        if strategy is BackpressureStrategy.RAISE:
            raise MetranaEventQueueFullError(
                f"the event queue of this process is full ({self.config.event_queue_max_size} "
                "events, METRANA_EVENT_QUEUE_MAX_SIZE); the dispatcher is not keeping up or "
                "not running. Raise the size, log less, or use backpressure_strategy='Block'"
            )
        if strategy is BackpressureStrategy.BLOCK:
            return self._block(record)
        self.dropped += points
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
