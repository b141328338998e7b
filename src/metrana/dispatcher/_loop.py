"""The drain loop: read every ring round-robin, batch by series, deliver, then commit.

A ring's committed position only advances after the target acknowledged the batch holding its
records, so a dispatcher killed at any instant loses nothing: its successor re-reads from the
committed positions and the store's (series, step) identity absorbs the replay.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from .. import ring as _ring
from .._config import Config
from .._enums import CloseStrategy
from .._errors import MetranaCorruptRingError
from .._identity import SeriesColumns, SeriesKey, labels_json
from .._logging import logger
from ..ring import (
    CLOSE,
    CLOSE_STRATEGY_OF_CODE,
    DECLARE,
    POINT,
    VALUES_PER_RECORD,
    decoder,
    span_decoder,
)
from ..session import (
    DispatcherStats,
    ErrorPublisher,
    Session,
    current_process,
    process_alive,
    publish_dispatcher_stats,
)
from ..storage import WriteResult
from ._spool import Spool, SpooledBatch, SpoolFullError
from ._system import SystemSampler
from .targets import DeliveryFailure, RejectedBatch, Target

SCAN_INTERVAL = 0.1
LIVENESS_INTERVAL = 0.5
EXIT_GRACE = 2.0
RECORDS_PER_WRITER = 20_000
# Records per batch across all writers: each writer's share of a pass is this divided among
# them (at least MIN_RECORDS_PER_WRITER), so that memory does not grow with the writer count.
RECORDS_PER_BATCH = 64_000
MIN_RECORDS_PER_WRITER = 2 * _ring.CHECKPOINT  # a checkpoint always falls in a share
RETRY_DELAY_MAX = 5.0
PROBE_INTERVAL = 2.0
# After a pass that found less than a quarter of a batch, wait a little before the next: a
# batch, with its transaction or request, and a pass over every ring cost the same for ten
# points as for ten thousand.
SMALL_PASS = RECORDS_PER_BATCH // 4
PASS_PACE = 0.002


class _Writer:
    """The dispatcher's view of one writer."""

    def __init__(self, reader: _ring.RingReader) -> None:
        self.reader = reader
        self.series: dict[int, SeriesKey] = {}
        self.saw_close = False
        self.dead = False
        self.batch_points = 0
        self.forgotten = False

    @property
    def name(self) -> str:
        return f"writer {self.reader.pid} ({self.reader.writer_id})"


class _Batch:
    """A batch handed to the target, and the ring positions it lets us commit once acked.

    It does not keep the columns: if the target fails, its DeliveryFailure gives them back
    for the spool, and without a spool they are read again from the rings."""

    __slots__ = ("commits", "discard", "future", "replay", "system")

    def __init__(
        self,
        future: Future[WriteResult],
        commits: list[tuple[_Writer, _ring.Cursor, int]],
        replay: bool = False,
        system: dict[SeriesKey, SeriesColumns] | None = None,
        discard: bool = False,
    ) -> None:
        self.future = future
        self.commits = commits
        self.replay = replay  # holds records that an earlier attempt may have stored
        # system metrics are in no ring: kept (a few points) to be sent again if abandoned
        self.system = system
        self.discard = discard  # commits the discard of a close strategy (see _discard_unread)


def _done(result: WriteResult) -> Future[WriteResult]:
    future: Future[WriteResult] = Future()
    future.set_result(result)
    return future


def _submitted(
    submit: Callable[..., Future[WriteResult]], batch: Mapping[SeriesKey, SeriesColumns], *args: Any
) -> Future[WriteResult]:
    """``submit(batch, *args)``; a batch the target cannot even take (an error that is not a
    delivery failure, which would otherwise stop the loop, and its successors, on the same
    records) is rejected: dropped and counted like a batch the target refused."""
    try:
        return submit(batch, *args)
    except Exception as error:
        logger.exception("the target could not take a batch")
        future: Future[WriteResult] = Future()
        future.set_exception(RejectedBatch(f"the batch could not be sent: {error!r}", 0))
        return future


class Dispatcher:
    def __init__(
        self,
        session: Session,
        config: Config,
        target: Target,
        spool: Spool | None = None,
        spooling: bool = False,
    ) -> None:
        self.session = session
        self.config = config
        self.target = target
        self.writers: dict[str, _Writer] = {}
        self._running = True
        self.closed_normally = 0
        self.died = 0
        self.stored = 0
        self.duplicates = 0
        self.replay_duplicates = 0
        self._collision_warned: set[str] = set()
        self.inflight: deque[_Batch] = deque()
        self._broken: set[str] = set()
        self.spool = spool
        self.spooling = target.offline or (spool is not None and (spooling or not spool.empty()))
        self._next_probe = time.monotonic() + PROBE_INTERVAL if spooling else 0.0
        self._probe: tuple[SpooledBatch, Future[WriteResult]] | None = None
        self.spooled = 0
        self.replayed = 0
        self.errors = ErrorPublisher(session.dir, config.error_queue_max_size)
        self.rejected = 0
        self.stats = DispatcherStats(pid=os.getpid(), started_ns=time.time_ns(), updated_ns=0)
        self._stats_published = -1.0
        self.max_inflight = max(1, min(target.max_inflight, config.dispatch_queue_max_size))
        self.system: SystemSampler | None = None
        if config.system_metrics:
            self.system = SystemSampler(config.system_metrics_interval)
        self._create_ms = current_process().create_ms
        self._system_points: dict[SeriesKey, SeriesColumns] = {}
        # The last step read per series, published for writers that join later (resume.json);
        # a replacement dispatcher starts from its predecessor's table, which holds the steps
        # of rings already drained and removed.
        self.last_steps: dict[SeriesKey, int] = {
            (name, scale, labels): last for name, scale, labels, last in session.read_resume()
        }
        self._last_steps_changed = False
        self._rotation = 0  # the ring a pass starts reading at
        self._pass_records = 0  # records the last pass read
        self._active_rings = 0  # rings that had records in the last pass

    def stop(self) -> None:
        self._running = False

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        # A pass decodes tens of thousands of records that live until the batch is built:
        # with the collector's default thresholds, collections that find nothing to free ran
        # many times per pass and cost as much as the decoding. Collect between passes instead
        # (the dispatcher makes few reference cycles), ignoring what was built at start-up.
        gc.collect()
        gc.freeze()
        gc.disable()
        next_scan = 0.0
        next_liveness = 0.0
        idle_delay = 0.0
        empty_since: float | None = None
        retry_delay = 0.05
        while self._running:
            now = time.monotonic()
            if now >= next_scan:
                self.scan()
                self.publish_last_steps()
                next_scan = now + SCAN_INTERVAL
            if now >= next_liveness:
                gc.collect()
                self.sample_system()
                self.check_liveness()
                self.publish_stats()
                next_liveness = now + LIVENESS_INTERVAL
            try:
                moved = self.drain_once()
                retry_delay = 0.05
            except DeliveryFailure as error:
                self.errors.publish("delivery", str(error))
                if self.spool is not None:
                    logger.error("delivery failed, spooling to %s: %s", self.spool.dir, error)
                    self._spool_inflight()
                    continue
                logger.error("delivery failed, will retry in %.1f s: %s", retry_delay, error)
                self._abandon_inflight()
                time.sleep(retry_delay)
                retry_delay = min(retry_delay * 2, RETRY_DELAY_MAX)
                continue
            self.finish_writers()
            if moved:
                idle_delay = 0.0
                empty_since = None
                if self._pass_records < SMALL_PASS:
                    time.sleep(PASS_PACE)
                continue
            if (
                not self.writers
                and not self.inflight
                and (not self.spooling or self.target.offline or self.spool is None)
            ):
                if empty_since is None:
                    empty_since = now
                    self._mark_run_ended()
                elif now - empty_since > EXIT_GRACE:
                    self.scan()
                    if not self.writers:
                        break
                    empty_since = None
            idle_delay = min(max(idle_delay * 2, 0.0005), 0.02)
            time.sleep(idle_delay)
        self.publish_stats()
        logger.info(
            "dispatcher exiting: %d points stored, %d duplicates", self.stored, self.duplicates
        )
        if self.spool is not None and not self.spool.empty():
            logger.warning(
                "data is left in the spool %s: it is replayed by the next dispatcher of this "
                "run, or by `metrana sync`",
                self.spool.dir,
            )

    def sample_system(self) -> None:
        if self.system is None or not self.system.due(time.monotonic()):
            return
        writers = [
            (w.reader.pid, w.reader.create_ms, w.reader.slot(_ring.M_RANK) - 1)
            for w in self.writers.values()
            if not w.dead
        ]
        writers.append((os.getpid(), self._create_ms, -1))  # the dispatcher itself
        self.system.sample(writers, self._system_points)

    def _take_system_points(self) -> dict[SeriesKey, SeriesColumns]:
        points, self._system_points = self._system_points, {}
        return points

    def _note_last_steps(self, columns: dict[SeriesKey, SeriesColumns]) -> None:
        last_steps = self.last_steps
        for key, series in columns.items():
            if series.steps:
                last = max(series.steps)
                if last > last_steps.get(key, -1):
                    last_steps[key] = last
                    self._last_steps_changed = True

    def publish_last_steps(self) -> None:
        if self._last_steps_changed:
            try:
                self.session.write_resume([(*key, last) for key, last in self.last_steps.items()])
            except OSError as error:
                logger.warning("could not write %s: %s", self.session.resume_path, error)
                return  # tried again at the next scan, and before a finished ring is removed
            self._last_steps_changed = False

    def publish_stats(self) -> None:
        stats = self.stats
        stats.stored, stats.duplicates, stats.rejected = self.stored, self.duplicates, self.rejected
        stats.replay_duplicates = self.replay_duplicates
        stats.inflight, stats.writers = len(self.inflight), len(self.writers)
        stats.spooled, stats.replayed = self.spooled, self.replayed
        with contextlib.suppress(OSError):
            publish_dispatcher_stats(self.session.dir, stats)

    def _mark_run_ended(self) -> None:
        status = "finished" if self.closed_normally else "crashed"
        try:
            self.target.set_status(status)
        except Exception as error:
            logger.error("could not mark the run %s: %s", status, error)

    # -- discovery and liveness ---------------------------------------------------------------

    def scan(self) -> None:
        """Open the rings created since the last scan."""
        for writer_id in self.session.ring_ids():
            if writer_id in self.writers or writer_id in self._broken:
                continue
            meta = self.session.dir / _ring.meta_name(writer_id)
            try:
                reader = _ring.RingReader(meta, span_decoder, VALUES_PER_RECORD)
            except (MetranaCorruptRingError, OSError) as error:
                # A writer may be between creating its files; the next scan retries.
                logger.debug("ring %s not ready: %s", meta, error)
                continue
            self.writers[writer_id] = _Writer(reader)
            logger.debug("new writer %s", writer_id)

    def check_liveness(self) -> None:
        for writer in self.writers.values():
            reader = writer.reader
            if not writer.dead and not process_alive(reader.pid, reader.create_ms):
                if reader.slot(_ring.M_STATE) != _ring.STATE_CLOSED:
                    logger.warning(
                        "%s died without closing; delivering the %d records left in its ring",
                        writer.name,
                        reader.pending(),
                    )
                writer.dead = True

    # -- draining -----------------------------------------------------------------------------

    def drain_once(self) -> bool:
        """Commit what the target acknowledged, then hand it the next batch if there is room.

        Acknowledgements are applied in submission order, so each ring's committed position
        only moves forward, and only past records the target has stored.
        """
        moved = False
        inflight = self.inflight
        while inflight and inflight[0].future.done():
            batch = inflight[0]
            try:
                result = batch.future.result()  # other DeliveryFailures propagate to run()
            except RejectedBatch as error:
                inflight.popleft()
                self._reject(batch, error)
                moved = True
                continue
            inflight.popleft()
            self._acknowledge(batch, result)
            moved = True
        if self.spooling:
            moved = self._maybe_replay() or moved
        if len(inflight) >= self.max_inflight:
            self._pass_records = SMALL_PASS  # it waited for the target already
            if not moved:
                wait([inflight[0].future], timeout=0.05)  # a little, for the oldest
            return True
        columns: dict[SeriesKey, SeriesColumns] = {}
        commits: list[tuple[_Writer, _ring.Cursor, int]] = []
        replay = False
        system = None
        if self.system is not None:
            system = self._take_system_points()
            columns = dict(system)
        # The batch is shared among the rings that had records last pass, not among all of
        # them: idle rings (say, a pool's waiting workers) must not shrink the busy ones' share,
        # and so the batches. The batch stays bounded by ``taken`` below either way.
        share = min(
            RECORDS_PER_WRITER,
            max(MIN_RECORDS_PER_WRITER, RECORDS_PER_BATCH // max(1, self._active_rings)),
        )
        # A span is read whole, so a ring that filled while the target was slow can bring many
        # records at once: stop at a batch's worth, and start each pass at the next ring.
        writers = list(self.writers.items())
        self._rotation = (self._rotation + 1) % max(1, len(writers))
        taken = 0
        active = 0
        for writer_id, writer in writers[self._rotation :] + writers[: self._rotation]:
            if taken >= RECORDS_PER_BATCH:
                break
            reader = writer.reader
            try:
                start = reader.cursor.records
                values = reader.read(share)
                if not values:
                    continue
                if start < reader.slot(_ring.M_SUBMITTED):
                    replay = True
                active += 1
                taken += len(values) // VALUES_PER_RECORD
                points = self._collect(writer, values, columns)
            except MetranaCorruptRingError as error:
                # One broken ring must not stop the others: set it aside, keep its files.
                logger.error("%s; this ring is left on disk and no longer read", error)
                self.errors.publish("corrupt_ring", str(error))
                writer.forgotten = True
                del self.writers[writer_id]
                self._broken.add(writer_id)
                continue
            commits.append((writer, reader.cursor.copy(), points))
        self._pass_records = taken
        self._active_rings = active
        if not commits and not columns:
            return moved
        if self.spooling and columns:
            self._note_last_steps(columns)
            self._spool_and_commit(columns, commits)
            return True
        self._note_last_steps(columns)
        for writer, cursor, _ in commits:
            if cursor.records > writer.reader.slot(_ring.M_SUBMITTED):
                writer.reader.set_slot(_ring.M_SUBMITTED, cursor.records)
        future = _submitted(self.target.submit, columns) if columns else _done(WriteResult(0, 0))
        inflight.append(_Batch(future, commits, replay, system))
        return True

    # -- the disk spool (A1) ------------------------------------------------------------------

    def _spool_and_commit(
        self,
        columns: Mapping[SeriesKey, SeriesColumns],
        commits: list[tuple[_Writer, _ring.Cursor, int]],
    ) -> bool:
        """Append a batch to the spool and commit its records; False (the records stay in the
        rings, to be read again) if the spool cannot take it."""
        assert self.spool is not None
        try:
            self.spool.append(columns)
        except (SpoolFullError, OSError) as error:
            logger.error("%s", error)
            self.errors.publish("spool", str(error))
            for writer, _, _ in commits:
                writer.reader.rewind()  # the data stays in the rings (A0)
            time.sleep(1.0)
            return False
        self.spooled += sum(len(c.steps) for c in columns.values())
        self._acknowledge(_Batch(_done(WriteResult(0, 0)), commits), WriteResult(0, 0))
        return True

    def _spool_inflight(self) -> None:
        """The target is out of reach: keep every batch in flight on disk, then commit."""
        batches = list(self.inflight)
        self.inflight.clear()
        for index, batch in enumerate(batches):
            try:
                error = batch.future.exception(timeout=120)
            except FutureTimeout:  # (TimeoutError itself only from Python 3.11)
                error = DeliveryFailure("no answer within 120 s")  # (gives no batch back)
            if error is None:
                self._acknowledge(batch, batch.future.result())
            elif isinstance(error, RejectedBatch):
                self._reject(batch, error)
            elif not (
                isinstance(error, DeliveryFailure)
                and error.undelivered is not None
                and self._spool_and_commit(error.undelivered(), batch.commits)
            ):
                # Not spooled: committing a later batch would skip this one's records.
                # Read them again from the rings, with everything after them.
                self.inflight.extend(batches[index:])
                self._abandon_inflight()
                break
        self.spooling = True
        self._next_probe = time.monotonic() + PROBE_INTERVAL

    def _maybe_replay(self) -> bool:
        """Every few seconds, try the target with the oldest spooled batch, without waiting
        for the answer (rings keep being spooled meanwhile); once it answers, replay the whole
        spool in order, then ship live again."""
        if self.target.offline or self.inflight:
            return False
        assert self.spool is not None
        if self._probe is None:
            if time.monotonic() < self._next_probe:
                return False
            oldest = next(iter(self.spool.pending()), None)
            if oldest is None:
                self.spooling = False
                logger.info("spool empty; shipping live again")
                return True
            future = _submitted(
                self.target.submit_spooled, oldest.series, self.spool.producer_id, oldest.batch_id
            )
            self._probe = (oldest, future)
            return False
        spooled, future = self._probe
        if not future.done():
            return False
        self._probe = None
        if not self._replayed(spooled, future):
            return False
        for spooled in self.spool.pending():  # the target answers: the rest, in order
            future = _submitted(
                self.target.submit_spooled, spooled.series, self.spool.producer_id, spooled.batch_id
            )
            if not self._replayed(spooled, future):
                return True
        self.spool.clear_if_empty()
        self.spooling = False
        logger.info("spool replayed; shipping live again")
        return True

    def _replayed(self, spooled: SpooledBatch, future: Future[WriteResult]) -> bool:
        """Account for one replayed batch; False (and the next probe later) if the target
        did not take it."""
        assert self.spool is not None
        try:
            result = future.result()
        except RejectedBatch as error:
            logger.error("a spooled batch was rejected: %s", error)
            self.errors.publish("rejected", str(error))
        except DeliveryFailure as error:
            logger.info("target still unreachable (%s); next try in %.0f s", error, PROBE_INTERVAL)
            self._next_probe = time.monotonic() + PROBE_INTERVAL
            return False
        else:
            self.stored += result.accepted
            self.duplicates += result.duplicates
            self.replayed += spooled.points
        self.spool.acknowledge(spooled)
        return True

    def _acknowledge(self, batch: _Batch, result: WriteResult) -> None:
        if any(writer.saw_close or writer.dead for writer, _, _ in batch.commits):
            # Before the commit that may drain a finished writer's ring: a process joining the
            # session reads these steps once such rings are gone (see also _forget).
            self.publish_last_steps()
        self.stats.batches += 1
        self.stored += result.accepted
        self.duplicates += result.duplicates
        if result.rejected:  # a part of the batch (its writers cannot be told apart)
            self.rejected += result.rejected
            self.errors.publish(
                "rejected", f"the target rejected {result.rejected} points (see dispatcher.log)"
            )
        if batch.replay:
            # Sent again after a failure or a dispatcher restart: these duplicates are the
            # store recognising points it already had, not two writers colliding.
            self.replay_duplicates += result.duplicates
        else:
            for name, count in result.duplicates_by_series.items():
                self._warn_collision(name, count)
        for writer, cursor, points in batch.commits:
            reader = writer.reader
            if writer.forgotten:
                continue
            reader.commit(cursor)
            reader.add_to_slot(_ring.M_COMMITTED_POINTS, points)

    def _reject(self, batch: _Batch, error: RejectedBatch) -> None:
        """The target refused this batch for good: drop it, count it, tell the writers."""
        points = sum(count for _, _, count in batch.commits)
        self.rejected += points
        logger.error("dropping %d points the target rejected: %s", points, error)
        self.errors.publish("rejected", str(error))
        for writer, cursor, count in batch.commits:
            if not writer.forgotten:
                writer.reader.commit(cursor)
                writer.reader.add_to_slot(_ring.M_COMMITTED_POINTS, count)
                writer.reader.add_to_slot(_ring.M_REJECTED, count)

    def _abandon_inflight(self) -> None:
        """A batch failed: commit the acknowledged batches before it, forget the rest and
        re-read from the committed positions.

        Later batches that did reach the target are sent again, marked as replays; the
        target's (series, step) identity stores them once."""
        for batch in self.inflight:
            with contextlib.suppress(Exception):
                batch.future.exception(timeout=30)
        inflight = self.inflight
        while inflight and inflight[0].future.done() and inflight[0].future.exception() is None:
            batch = inflight.popleft()
            self._acknowledge(batch, batch.future.result())
        for batch in inflight:
            if batch.system:
                self._restore_system_points(batch.system)
            if batch.discard:
                self._cancel_discard(batch)
        inflight.clear()
        for writer in self.writers.values():
            writer.reader.rewind()

    def _cancel_discard(self, batch: _Batch) -> None:
        """A batch before a close strategy's discard failed: its records are read again, and
        so are the discarded ones behind them, which are then delivered too (the writer has
        closed, so nothing discards them again). The count of discarded points follows."""
        for writer, _, discarded in batch.commits:
            if discarded and not writer.forgotten:
                writer.reader.add_to_slot(_ring.M_DISCARDED, -discarded)
                logger.warning(
                    "%s: a delivery failed before its discard was committed; the %d points "
                    "discarded are delivered instead",
                    writer.name,
                    discarded,
                )

    def _restore_system_points(self, points: dict[SeriesKey, SeriesColumns]) -> None:
        """Put the system samples of an abandoned batch back before those taken since."""
        for key, series in points.items():
            later = self._system_points.get(key)
            if later is not None:
                series = SeriesColumns(
                    series.steps + later.steps,
                    series.values + later.values,
                    series.timestamps + later.timestamps,
                )
            self._system_points[key] = series

    def _collect(
        self, writer: _Writer, values: list[Any], batch: dict[SeriesKey, SeriesColumns]
    ) -> int:
        """Add the points of ``values`` (the records of a span of one writer's ring, five
        values each) to ``batch``, column by column; take note of declarations and the CLOSE
        record. Returns the points added."""
        kinds = values[0::VALUES_PER_RECORD]
        points = kinds.count(POINT)
        if points == len(kinds):
            self._add_points(writer, values, batch)
            return points
        controls = sorted(_indexes(kinds, DECLARE) + _indexes(kinds, CLOSE))
        if points + len(controls) != len(kinds):
            raise MetranaCorruptRingError(f"{writer.name}: a record of unknown kind in its ring")
        start = 0
        for index in controls:
            if index > start:
                self._add_points(
                    writer, values[VALUES_PER_RECORD * start : VALUES_PER_RECORD * index], batch
                )
            at = VALUES_PER_RECORD * index
            kind, sid, name, scale, labels = values[at : at + VALUES_PER_RECORD]
            if kind == DECLARE:
                writer.series[sid] = (name, scale, labels_json(labels))
            else:
                writer.saw_close = True
            start = index + 1
        if start < len(kinds):
            self._add_points(writer, values[VALUES_PER_RECORD * start :], batch)
        return points

    def _add_points(
        self, writer: _Writer, values: list[Any], batch: dict[SeriesKey, SeriesColumns]
    ) -> None:
        """Point records (kind, series id, step, value, timestamp) into ``batch``."""
        every = VALUES_PER_RECORD
        for sid, steps, point_values, timestamps in _by_series(
            values[1::every], values[2::every], values[3::every], values[4::every]
        ):
            key = writer.series.get(sid)
            if key is None:
                key = self._declared_outside_ring(writer, sid)
            target = batch.get(key)
            if target is None:
                batch[key] = SeriesColumns(steps, point_values, timestamps)
            else:
                target.steps.extend(steps)
                target.values.extend(point_values)
                target.timestamps.extend(timestamps)

    def _declared_outside_ring(self, writer: _Writer, sid: int) -> SeriesKey:
        """A series declared before the committed position (we replaced a dispatcher)."""
        path = writer.reader.directory / _ring.declarations_name(writer.reader.writer_id)
        for raw in _ring.read_declarations(path):
            record = decoder.decode(raw)
            writer.series[record[1]] = (record[2], record[3], labels_json(record[4]))
        key = writer.series.get(sid)
        if key is None:
            raise MetranaCorruptRingError(f"{writer.name}: point of undeclared series {sid}")
        return key

    def _warn_collision(self, metric: str, count: int) -> None:
        if metric in self._collision_warned:
            return
        self._collision_warned.add(metric)
        logger.warning(
            "%d points of metric %r were already stored at the same step (first write wins). "
            "If several processes log this metric, give each a 'rank' label or log it from "
            "one rank only",
            count,
            metric,
        )

    # -- closing writers ----------------------------------------------------------------------

    def finish_writers(self) -> None:
        for writer_id, writer in list(self.writers.items()):
            reader = writer.reader
            closed = reader.slot(_ring.M_STATE) == _ring.STATE_CLOSED
            if closed and not writer.saw_close:
                strategy = CLOSE_STRATEGY_OF_CODE.get(reader.slot(_ring.M_CLOSE_STRATEGY))
                if strategy in (CloseStrategy.IMMEDIATE, CloseStrategy.COMPLETE_PENDING):
                    self._discard_unread(writer)
            if writer.saw_close and reader.drained():
                reader.set_slot(_ring.M_CLOSE_ACK, 1)
                self.closed_normally += 1
                self._forget(writer_id, writer)
            elif writer.dead and reader.drained():
                self.died += 1
                self._forget(writer_id, writer)

    def _discard_unread(self, writer: _Writer) -> None:
        """Close strategies Immediate/CompletePending: drop what is still queued in the ring.

        What was already handed to the target finishes; the discard is committed behind it."""
        discarded = 0
        while True:
            values = writer.reader.read(RECORDS_PER_WRITER)
            if not values:
                break
            discarded += values[0::VALUES_PER_RECORD].count(POINT)
        writer.saw_close = True  # the state slot is set after the writer's last append
        reader = writer.reader
        self.inflight.append(
            _Batch(
                _done(WriteResult(0, 0)),
                [(writer, reader.cursor.copy(), discarded)],
                discard=True,
            )
        )
        reader.add_to_slot(_ring.M_DISCARDED, discarded)
        if discarded:
            logger.warning(
                "%s closed with %s: discarded %d points still queued",
                writer.name,
                CLOSE_STRATEGY_OF_CODE.get(reader.slot(_ring.M_CLOSE_STRATEGY)),
                discarded,
            )

    def _forget(self, writer_id: str, writer: _Writer) -> None:
        # Before the ring goes: a process joining the session waits until the rings of
        # finished writers are removed, then reads these steps.
        self.publish_last_steps()
        writer.forgotten = True
        del self.writers[writer_id]
        with contextlib.suppress(OSError):
            writer.reader.delete()
        logger.debug("writer %s finished", writer_id)


def _indexes(items: list[Any], value: Any) -> list[int]:
    """Where ``value`` occurs in ``items`` (a scan in C: control records are rare)."""
    found: list[int] = []
    start = 0
    while True:
        try:
            start = items.index(value, start) + 1
        except ValueError:
            return found
        found.append(start - 1)


Columns = tuple[int, list[int], list[Any], list[int]]


def _by_series(
    sids: list[int], steps: list[int], values: list[Any], timestamps: list[int]
) -> list[Columns]:
    """Split point columns by series id, keeping each series' order.

    Without a loop in Python for the common shapes: one series, or several logged in the same
    order at every step (loss, accuracy, learning rate...); any other mix takes the loop."""
    first = sids[0]
    count = len(sids)
    if sids.count(first) == count:
        return [(first, steps, values, timestamps)]
    try:
        period = sids.index(first, 1)
    except ValueError:
        period = 0
    regular = 1 < period <= 64 and len(set(sids[:period])) == period
    if regular and all(
        sids[j::period].count(sids[j]) == len(range(j, count, period)) for j in range(period)
    ):
        return [
            (sids[j], steps[j::period], values[j::period], timestamps[j::period])
            for j in range(period)
        ]
    grouped: dict[int, tuple[list[int], list[Any], list[int]]] = {}
    for sid, step, value, timestamp in zip(sids, steps, values, timestamps, strict=True):
        columns = grouped.get(sid)
        if columns is None:
            columns = grouped[sid] = ([], [], [])
        columns[0].append(step)
        columns[1].append(value)
        columns[2].append(timestamp)
    return [(sid, *columns) for sid, columns in grouped.items()]
