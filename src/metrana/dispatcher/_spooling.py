"""The disk spool (A1) in the loop: batches the target cannot take now are appended to the
spool and their records committed; every few seconds the oldest spooled batch probes the
target, and once it answers the whole spool is replayed in order before shipping live again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from .._identity import SeriesColumns, SeriesKey
from .._logging import logger
from ..session import DispatcherStats, ErrorPublisher
from ..storage import WriteResult
from ._columns import WriterView
from ._inflight import Commit, Inflight, InflightBatch, done, submitted
from ._spool import Spool, SpooledBatch, SpoolFullError
from .targets import DeliveryFailure, RejectedBatch, Target

__all__ = ["PROBE_INTERVAL", "Spooling"]

PROBE_INTERVAL = 2.0
# How long a batch in flight may stay unanswered when the target failed and it must be spooled.
ANSWER_TIMEOUT = 120.0
SPOOL_FULL_PAUSE = 1.0


class Spooling:
    """Whether the loop spools instead of shipping live, and the spool's side of the loop."""

    def __init__(
        self,
        spool: Spool | None,
        target: Target,
        inflight: Inflight,
        stats: DispatcherStats,
        errors: ErrorPublisher,
        writers: Callable[[], Iterable[WriterView]],
        stop: threading.Event,
        active: bool = False,
    ) -> None:
        """``active``: start spooling (a replacement dispatcher that found the target
        unreachable); a spool that holds batches is replayed first anyway."""
        self.spool = spool
        self.target = target
        self.inflight = inflight
        self.stats = stats
        self.errors = errors
        self.writers = writers
        self.stop = stop
        self.active = target.offline or (spool is not None and (active or not spool.empty()))
        self._next_probe = time.monotonic() + PROBE_INTERVAL if active else 0.0
        self._probe: tuple[SpooledBatch, Future[WriteResult]] | None = None

    @property
    def holds_data(self) -> bool:
        """Batches wait in the spool for a target that will answer (not ``offline``)."""
        return self.active and not self.target.offline and self.spool is not None

    def spool_and_commit(
        self, columns: Mapping[SeriesKey, SeriesColumns], commits: list[Commit]
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
            self.stop.wait(SPOOL_FULL_PAUSE)
            return False
        self.stats.spooled += sum(len(c.steps) for c in columns.values())
        self.inflight.acknowledge(
            InflightBatch(done(WriteResult(0, 0)), commits), WriteResult(0, 0)
        )
        return True

    def spool_inflight(self) -> None:
        """The target is out of reach: keep every batch in flight on disk, then commit."""
        batches = list(self.inflight)
        self.inflight.batches.clear()
        for index, batch in enumerate(batches):
            try:
                error = batch.future.exception(timeout=ANSWER_TIMEOUT)
            except FutureTimeout:  # (TimeoutError itself only from Python 3.11)
                error = DeliveryFailure(f"no answer within {ANSWER_TIMEOUT:.0f} s")
            if error is None:
                self.inflight.acknowledge(batch, batch.future.result())
            elif isinstance(error, RejectedBatch):
                self.inflight.reject(batch, error)
            elif not (
                isinstance(error, DeliveryFailure)
                and error.undelivered is not None
                and self.spool_and_commit(error.undelivered(), batch.commits)
            ):
                # Not spooled: committing a later batch would skip this one's records.
                # Read them again from the rings, with everything after them.
                self.inflight.batches.extend(batches[index:])
                self.inflight.abandon(self.writers())
                break
        self.active = True
        self._next_probe = time.monotonic() + PROBE_INTERVAL

    def maybe_replay(self) -> bool:
        """Every few seconds, try the target with the oldest spooled batch, without waiting
        for the answer (rings keep being spooled meanwhile); once it answers, replay the whole
        spool in order, then ship live again. True if the loop made progress."""
        if self.target.offline or len(self.inflight):
            return False
        spool = self.spool
        assert spool is not None
        if self._probe is None:
            if time.monotonic() < self._next_probe:
                return False
            oldest = next(iter(spool.pending()), None)
            if oldest is None:
                self.active = False
                logger.info("spool empty; shipping live again")
                return True
            future = submitted(
                self.target.submit_spooled, oldest.series, spool.producer_id, oldest.batch_id
            )
            self._probe = (oldest, future)
            return False
        spooled, future = self._probe
        if not future.done():
            return False
        self._probe = None
        if not self._replayed(spooled, future):
            return False
        for spooled in spool.pending():  # the target answers: the rest, in order
            if self.stop.is_set():
                return True  # the rest stays in the spool for the next dispatcher
            future = submitted(
                self.target.submit_spooled, spooled.series, spool.producer_id, spooled.batch_id
            )
            if not self._replayed(spooled, future):
                return True
        spool.clear_if_empty()
        self.active = False
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
            self.stats.stored += result.accepted
            self.stats.duplicates += result.duplicates
            self.stats.replayed += spooled.points
        self.spool.acknowledge(spooled)
        return True
