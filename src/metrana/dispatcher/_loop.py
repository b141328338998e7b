# Just over 400 lines: the schedule, the discovery of rings and the pass are one loop,
# read together; its other jobs are in _columns, _inflight and _spooling.
"""The drain loop: find the rings, read them round-robin, batch by series, deliver, then commit
(``_inflight``), spooling when the target is out of reach (``_spooling``).

Every wait of the loop is on its stop event, so a SIGTERM is acted on at once: the batches in
flight are spooled (or left in the rings, which a successor reads again) and the loop ends.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
from concurrent.futures import wait

from .. import ring as _ring
from .._config import Config
from .._enums import CloseStrategy
from .._errors import MetranaCorruptRingError
from .._identity import SeriesColumns, SeriesKey
from .._logging import logger
from ..api._types import ExperimentStatusError
from ..ring import CLOSE_STRATEGY_OF_CODE, VALUES_PER_RECORD, span_decoder
from ..session import (
    DispatcherStats,
    ErrorPublisher,
    Session,
    current_process,
    process_alive,
    publish_dispatcher_stats,
)
from ..storage import WriteResult
from ._columns import WriterView, collect, points_in
from ._inflight import Commit, Inflight, InflightBatch, done, submitted
from ._spool import Spool
from ._spooling import Spooling
from ._system import SystemSampler
from .targets import DeliveryFailure, Target

__all__ = ["Dispatcher"]

SCAN_INTERVAL = 0.1
LIVENESS_INTERVAL = 0.5
# With no writer left, the dispatcher waits this long for a new one before it exits (a job's
# processes may close and re-init, or be restarted by an elastic launcher).
EXIT_GRACE = 2.0
RECORDS_PER_WRITER = 20_000
# Records per batch across all writers: each writer's share of a pass is this divided among
# them (at least MIN_RECORDS_PER_WRITER), so that memory does not grow with the writer count.
RECORDS_PER_BATCH = 64_000
MIN_RECORDS_PER_WRITER = 2 * _ring.CHECKPOINT  # a checkpoint always falls in a share
RETRY_DELAY_MAX = 5.0
# After a pass that found less than a quarter of a batch, wait a little before the next: a
# batch, with its transaction or request, and a pass over every ring cost the same for ten
# points as for ten thousand. The wait doubles while passes stay small, up to PASS_PACE_MAX:
# a training loop that logs a few metrics every millisecond or two is then shipped in batches
# of tens of records, not one (a tenth of a core saved), at most 20 ms after it was logged.
SMALL_PASS = RECORDS_PER_BATCH // 4
PASS_PACE = 0.002
PASS_PACE_MAX = 0.02

# How a run ends when none of its processes called metrana.close() (all were killed or
# crashed). A run where some process closed is done: ranks and workers that end without
# close() (a killed worker, a pool torn down) are common in runs that succeeded.
RUN_CRASHED = ExperimentStatusError(
    name="RunCrashed",
    detail="no process of the run called metrana.close() (killed or crashed); what they "
    "logged before was delivered",
)


class Dispatcher:
    """The loop of one session's dispatcher, over ``target`` (and ``spool`` for a remote one)."""

    def __init__(
        self,
        session: Session,
        config: Config,
        target: Target,
        spool: Spool | None = None,
        spooling: bool = False,
        stop: threading.Event | None = None,
        exit_grace: float = EXIT_GRACE,
        manage_gc: bool = True,
    ) -> None:
        """``manage_gc``: collect between passes instead of during them (see :meth:`run`);
        False when the loop runs in a thread of a process that is not a dispatcher's."""
        self.session = session
        self.config = config
        self.target = target
        self.stopping = stop or threading.Event()
        self.exit_grace = exit_grace
        self.manage_gc = manage_gc
        self.writers: dict[str, WriterView] = {}
        self.closed_normally = 0
        self.died = 0
        self._broken: set[str] = set()
        self.errors = ErrorPublisher(session.dir, config.error_queue_max_size)
        self.stats = DispatcherStats(pid=os.getpid(), started_ns=time.time_ns(), updated_ns=0)
        self.max_inflight = max(1, min(target.max_inflight, config.dispatch_queue_max_size))
        self.system: SystemSampler | None = None
        if config.system_metrics:
            self.system = SystemSampler(config.system_metrics_interval, config.host_id)
        self.inflight = Inflight(self.stats, self.errors, self.publish_last_steps, self.system)
        self.spooling = Spooling(
            spool,
            target,
            self.inflight,
            self.stats,
            self.errors,
            self.writers.values,
            self.stopping,
            active=spooling,
        )
        self._create_ms = current_process().create_ms
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

    @property
    def spool(self) -> Spool | None:
        return self.spooling.spool

    def stop(self) -> None:
        """End the loop at once (safe from a signal handler and from another thread)."""
        self.stopping.set()

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        # A pass decodes tens of thousands of records that live until the batch is built:
        # with the collector's default thresholds, collections that find nothing to free ran
        # many times per pass and cost as much as the decoding. Collect between passes instead
        # (the dispatcher makes few reference cycles), ignoring what was built at start-up.
        if self.manage_gc:
            gc.collect()
            gc.freeze()
            gc.disable()
        try:
            self._loop()
        finally:
            if self.manage_gc:
                gc.enable()
        if self.stopping.is_set() and self.spool is not None and len(self.inflight):
            logger.info("stopping: spooling the %d batches in flight", len(self.inflight))
            self.spooling.spool_inflight()
        self.publish_last_steps()
        self.publish_stats()
        logger.info(
            "dispatcher exiting: %d points stored, %d duplicates",
            self.stats.stored,
            self.stats.duplicates,
        )
        if self.spool is not None and not self.spool.empty():
            logger.warning(
                "data is left in the spool %s: it is replayed by the next dispatcher of this "
                "run, or by `metrana sync`",
                self.spool.dir,
            )

    def _loop(self) -> None:
        stopping = self.stopping
        next_scan = 0.0
        next_liveness = 0.0
        idle_delay = 0.0
        pace = 0.0
        empty_since: float | None = None
        retry_delay = 0.05
        while not stopping.is_set():
            now = time.monotonic()
            if now >= next_scan:
                self.scan()
                self.publish_last_steps()
                next_scan = now + SCAN_INTERVAL
            if now >= next_liveness:
                if self.manage_gc:
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
                    self.spooling.spool_inflight()
                    continue
                logger.error("delivery failed, will retry in %.1f s: %s", retry_delay, error)
                self.inflight.abandon(self.writers.values())
                stopping.wait(retry_delay)
                retry_delay = min(retry_delay * 2, RETRY_DELAY_MAX)
                continue
            self.finish_writers()
            if moved:
                idle_delay = 0.0
                empty_since = None
                if self._pass_records < SMALL_PASS:
                    pace = min(max(pace * 2, PASS_PACE), PASS_PACE_MAX)
                    stopping.wait(pace)
                else:
                    pace = 0.0
                continue
            if not self.writers and not len(self.inflight) and not self.spooling.holds_data:
                if empty_since is None:
                    empty_since = now
                    self._mark_run_ended()
                elif now - empty_since > self.exit_grace:
                    self.scan()
                    if not self.writers:
                        return
                    empty_since = None
            idle_delay = min(max(idle_delay * 2, 0.0005), 0.02)
            stopping.wait(idle_delay)

    def sample_system(self) -> None:
        if self.system is None or not self.system.due(time.monotonic()):
            return
        writers = [
            (w.reader.pid, w.reader.create_ms, w.reader.slot(_ring.M_RANK) - 1)
            for w in self.writers.values()
            if not w.dead
        ]
        writers.append((os.getpid(), self._create_ms, -1))  # the dispatcher itself
        self.system.sample(writers)

    def _note_last_steps(self, columns: dict[SeriesKey, SeriesColumns]) -> None:
        last_steps = self.last_steps
        for key, series in columns.items():
            last = series.last_step()
            if last is not None and last > last_steps.get(key, -1):
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
        stats.inflight, stats.writers = len(self.inflight), len(self.writers)
        with contextlib.suppress(OSError):
            publish_dispatcher_stats(self.session.dir, stats)

    def _mark_run_ended(self) -> None:
        status = "done" if self.closed_normally else "error"
        try:
            self.target.set_status(status, None if self.closed_normally else RUN_CRASHED)
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
            self.writers[writer_id] = WriterView(reader)
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
        inflight = self.inflight
        moved = inflight.settle()  # a DeliveryFailure propagates to the loop
        if self.spooling.active:
            moved = self.spooling.maybe_replay() or moved
        if len(inflight) >= self.max_inflight:
            self._pass_records = SMALL_PASS  # it waited for the target already
            if not moved:
                wait([inflight.batches[0].future], timeout=0.05)  # a little, for the oldest
            return True
        columns: dict[SeriesKey, SeriesColumns] = {}
        system = None
        if self.system is not None:
            system = self.system.take()
            columns = dict(system)
        commits, replay = self._read_rings(columns)
        if not commits and not columns:
            return moved
        self._note_last_steps(columns)
        if self.spooling.active and columns:
            self.spooling.spool_and_commit(columns, commits)
            return True
        for writer, cursor, _ in commits:
            if cursor.records > writer.reader.slot(_ring.M_SUBMITTED):
                writer.reader.set_slot(_ring.M_SUBMITTED, cursor.records)
        future = submitted(self.target.submit, columns) if columns else done(WriteResult(0, 0))
        inflight.append(InflightBatch(future, commits, replay, system))
        return True

    def _read_rings(self, columns: dict[SeriesKey, SeriesColumns]) -> tuple[list[Commit], bool]:
        """Read one pass of the rings into ``columns``: the commits it allows once delivered,
        and whether it holds records an earlier dispatcher may have handed to the target."""
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
        commits: list[Commit] = []
        replay = False
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
                points = collect(writer, values, columns)
                # (points, not records: a bulk record of 1,024 values is 1,024 of them)
                taken += max(points, len(values) // VALUES_PER_RECORD)
            except (MetranaCorruptRingError, ValueError, TypeError, IndexError) as error:
                # One broken ring must not stop the others: set it aside, keep its files. (A
                # record whose bytes lie fails in the decoders as one of the built-in errors.)
                problem = str(error)
                if not isinstance(error, MetranaCorruptRingError):
                    problem = (
                        f"ring {writer_id} holds a record that does not decode "
                        f"({type(error).__name__}: {error})"
                    )
                logger.error("%s; this ring is left on disk and no longer read", problem)
                self.errors.publish("corrupt_ring", problem)
                writer.forgotten = True
                del self.writers[writer_id]
                self._broken.add(writer_id)
                continue
            commits.append((writer, reader.cursor.copy(), points))
        self._pass_records = taken
        self._active_rings = active
        return commits, replay

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

    def _discard_unread(self, writer: WriterView) -> None:
        """Close strategies Immediate/CompletePending: drop what is still queued in the ring.

        What was already handed to the target finishes; the discard is committed behind it."""
        discarded = 0
        while True:
            values = writer.reader.read(RECORDS_PER_WRITER)
            if not values:
                break
            discarded += points_in(values)
        writer.saw_close = True  # the state slot is set after the writer's last append
        reader = writer.reader
        self.inflight.append(
            InflightBatch(
                done(WriteResult(0, 0)),
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

    def _forget(self, writer_id: str, writer: WriterView) -> None:
        # Before the ring goes: a process joining the session waits until the rings of
        # finished writers are removed, then reads these steps.
        self.publish_last_steps()
        writer.forgotten = True
        del self.writers[writer_id]
        with contextlib.suppress(OSError):
            writer.reader.delete()
        logger.debug("writer %s finished", writer_id)
