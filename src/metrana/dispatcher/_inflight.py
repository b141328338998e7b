"""Batches handed to the target, in submission order, and what their answers commit.

A ring's committed position only advances once the target acknowledged every batch that holds
its records, in order: a dispatcher killed at any instant loses nothing, and its successor
re-reads from the committed positions while the store's (series, step) identity absorbs the
replay.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from typing import Any

from .. import ring as _ring
from .._identity import SeriesColumns, SeriesKey
from .._logging import logger
from ..session import DispatcherStats, ErrorPublisher
from ..storage import WriteResult
from ._columns import WriterView
from ._system import SystemSampler
from .targets import RejectedBatch

__all__ = ["Commit", "Inflight", "InflightBatch", "done", "submitted"]

# A ring's share of a batch: its reader, the cursor to commit, the points it holds.
Commit = tuple[WriterView, _ring.Cursor, int]


class InflightBatch:
    """A batch handed to the target, and the ring positions it lets us commit once acked.

    It does not keep the columns: if the target fails, its DeliveryFailure gives them back
    for the spool, and without a spool they are read again from the rings."""

    __slots__ = ("commits", "discard", "future", "replay", "system")

    def __init__(
        self,
        future: Future[WriteResult],
        commits: list[Commit],
        replay: bool = False,
        system: dict[SeriesKey, SeriesColumns] | None = None,
        discard: bool = False,
    ) -> None:
        self.future = future
        self.commits = commits
        self.replay = replay  # holds records that an earlier attempt may have stored
        # system metrics are in no ring: kept (a few points) to be sent again if abandoned
        self.system = system
        self.discard = discard  # commits the discard of a close strategy (see finish_writers)


def done(result: WriteResult) -> Future[WriteResult]:
    """A future already answered with ``result``."""
    future: Future[WriteResult] = Future()
    future.set_result(result)
    return future


def submitted(
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


class Inflight:
    """The batches in flight and the bookkeeping of their answers."""

    def __init__(
        self,
        stats: DispatcherStats,
        errors: ErrorPublisher,
        before_final_commit: Callable[[], None],
        system: SystemSampler | None = None,
    ) -> None:
        """``before_final_commit`` runs before a commit that may drain a finished writer's
        ring (the dispatcher publishes its resume table then)."""
        self.batches: deque[InflightBatch] = deque()
        self.stats = stats
        self.errors = errors
        self.before_final_commit = before_final_commit
        self.system = system
        self._collision_warned: set[str] = set()

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[InflightBatch]:
        return iter(self.batches)

    def append(self, batch: InflightBatch) -> None:
        self.batches.append(batch)

    def settle(self) -> bool:
        """Apply the answers that came, oldest first, up to the first batch still in flight;
        True if any did. A DeliveryFailure (not a rejection) propagates to the loop."""
        moved = False
        batches = self.batches
        while batches and batches[0].future.done():
            batch = batches[0]
            try:
                result = batch.future.result()
            except RejectedBatch as error:
                batches.popleft()
                self.reject(batch, error)
                moved = True
                continue
            batches.popleft()
            self.acknowledge(batch, result)
            moved = True
        return moved

    def acknowledge(self, batch: InflightBatch, result: WriteResult) -> None:
        """The target stored ``batch``: count it and commit its rings' positions."""
        if any(writer.saw_close or writer.dead for writer, _, _ in batch.commits):
            # Before the commit that may drain a finished writer's ring: a process joining the
            # session reads these steps once such rings are gone (see also _forget).
            self.before_final_commit()
        stats = self.stats
        stats.batches += 1
        stats.stored += result.accepted
        stats.duplicates += result.duplicates
        if result.rejected:  # a part of the batch (its writers cannot be told apart)
            stats.rejected += result.rejected
            self.errors.publish(
                "rejected", f"the target rejected {result.rejected} points (see dispatcher.log)"
            )
        if batch.replay:
            # Sent again after a failure or a dispatcher restart: these duplicates are the
            # store recognising points it already had, not two writers colliding.
            stats.replay_duplicates += result.duplicates
        else:
            for name, count in result.duplicates_by_series.items():
                self._warn_collision(name, count)
        for writer, cursor, points in batch.commits:
            if writer.forgotten:
                continue
            writer.reader.commit(cursor)
            writer.reader.add_to_slot(_ring.M_COMMITTED_POINTS, points)

    def reject(self, batch: InflightBatch, error: RejectedBatch) -> None:
        """The target refused this batch for good: drop it, count it, tell the writers."""
        points = sum(count for _, _, count in batch.commits)
        self.stats.rejected += points
        logger.error("dropping %d points the target rejected: %s", points, error)
        self.errors.publish("rejected", str(error))
        for writer, cursor, count in batch.commits:
            if not writer.forgotten:
                writer.reader.commit(cursor)
                writer.reader.add_to_slot(_ring.M_COMMITTED_POINTS, count)
                writer.reader.add_to_slot(_ring.M_REJECTED, count)

    def abandon(self, writers: Iterable[WriterView]) -> None:
        """A batch failed: commit the acknowledged batches before it, forget the rest and
        re-read ``writers`` from their committed positions.

        Later batches that did reach the target are sent again, marked as replays; the
        target's (series, step) identity stores them once."""
        for batch in self.batches:
            with contextlib.suppress(Exception):
                batch.future.exception(timeout=30)
        batches = self.batches
        while batches and batches[0].future.done() and batches[0].future.exception() is None:
            batch = batches.popleft()
            self.acknowledge(batch, batch.future.result())
        for batch in batches:
            if batch.system and self.system is not None:
                self.system.give_back(batch.system)
            if batch.discard:
                self._cancel_discard(batch)
        batches.clear()
        for writer in writers:
            writer.reader.rewind()

    def _cancel_discard(self, batch: InflightBatch) -> None:
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
