"""Counters, for ``metrana.stats()`` and ``metrana status``: what each writer logged, dropped
(by reason) and had delivered, read from the ring meta files, plus the dispatcher's totals."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec

from .. import ring as _ring
from .._errors import MetranaCorruptRingError
from .._files import read_struct, write_struct


class DropReason(msgspec.Struct, frozen=True):
    """Why points will never be stored: one name, read alike by ``stats()``, ``metrana
    status`` and the docs."""

    name: str  # the field of metrana status's "dropped"
    counter: str  # the field of WriterStats and SessionStats that counts it


DROP_REASONS = (
    DropReason("queue_full", "dropped_queue_full"),  # the ring was full (backpressure DropNew)
    DropReason("on_close", "dropped_on_close"),  # discarded by an Immediate/CompletePending close
    DropReason("rejected", "rejected"),  # refused for good by the target
)

__all__ = [
    "DROP_REASONS",
    "DispatcherStats",
    "DropReason",
    "SessionStats",
    "Stats",
    "WriterStats",
    "publish_dispatcher_stats",
    "read_dispatcher_stats",
    "session_stats",
    "stats_path",
    "writer_stats",
]


class DispatcherStats(msgspec.Struct):
    """Published by the dispatcher (``stats.json`` in the session directory)."""

    pid: int
    started_ns: int
    updated_ns: int
    stored: int = 0
    duplicates: int = 0
    replay_duplicates: int = 0  # of duplicates: points sent again after a failure or restart
    rejected: int = 0
    batches: int = 0
    inflight: int = 0
    writers: int = 0
    spooled: int = 0
    replayed: int = 0


class WriterStats(msgspec.Struct):
    """One writer process's ring."""

    pid: int
    writer_id: str
    logged: int
    dropped_queue_full: int
    dropped_on_close: int
    rejected: int
    delivered: int
    pending: int
    ring_fill: float
    closed: bool


class SessionStats(msgspec.Struct):
    session_dir: str
    writers: list[WriterStats]
    logged: int
    dropped_queue_full: int
    dropped_on_close: int
    rejected: int
    delivered: int
    pending: int
    stored: int
    duplicates: int
    dispatcher: DispatcherStats | None


class Stats(msgspec.Struct):
    """``metrana.stats()``: this process's writer and the whole session."""

    process: WriterStats | None
    session: SessionStats


def stats_path(session_dir: Path) -> Path:
    return session_dir / "stats.json"


def publish_dispatcher_stats(session_dir: Path, stats: DispatcherStats) -> None:
    stats.updated_ns = time.time_ns()
    write_struct(stats_path(session_dir), stats)


def read_dispatcher_stats(session_dir: Path) -> DispatcherStats | None:
    return read_struct(stats_path(session_dir), DispatcherStats)


def writer_stats(meta: memoryview, writer_id: str, logged: int | None = None) -> WriterStats:
    """Counters of one writer from its meta slots (``logged`` from the writer itself if known)."""
    written = int(meta[_ring.M_WRITTEN])
    declared = int(meta[_ring.M_DECLARED])
    closed = int(meta[_ring.M_STATE]) == _ring.STATE_CLOSED
    if logged is None:
        bulk_extra = int(meta[_ring.M_BULK_EXTRA])  # a bulk record holds many points
        logged = max(0, written - declared - (1 if closed else 0) + bulk_extra)
    committed_points = int(meta[_ring.M_COMMITTED_POINTS])
    # The record count is republished by a live writer every 0.1 s; the dispatcher may have
    # committed more than the last figure says.
    logged = max(logged, committed_points)
    discarded = int(meta[_ring.M_DISCARDED])
    rejected = int(meta[_ring.M_REJECTED])
    max_events = int(meta[_ring.M_MAX_EVENTS])
    in_ring = max(0, written - int(meta[_ring.M_COMMITTED]))
    return WriterStats(
        pid=int(meta[_ring.M_PID]),
        writer_id=writer_id,
        logged=logged,
        dropped_queue_full=int(meta[_ring.M_DROPPED]),
        dropped_on_close=discarded,
        rejected=rejected,
        delivered=committed_points - discarded - rejected,
        pending=max(0, logged - committed_points),
        ring_fill=round(in_ring / max_events, 4) if max_events else 0.0,
        closed=closed,
    )


def session_stats(session_dir: Path) -> SessionStats:
    """Sum the counters of every ring in a session directory (read-only)."""
    writers: list[WriterStats] = []
    for meta_path in sorted(session_dir.glob("w-*.meta")):
        meta = _ring.read_meta(meta_path)
        if meta is None:
            continue
        try:
            writers.append(writer_stats(meta, _ring.writer_id_of(meta_path)))
        except MetranaCorruptRingError:
            continue
    dispatcher = read_dispatcher_stats(session_dir)
    return SessionStats(
        session_dir=str(session_dir),
        writers=writers,
        logged=sum(w.logged for w in writers),
        dropped_queue_full=sum(w.dropped_queue_full for w in writers),
        dropped_on_close=sum(w.dropped_on_close for w in writers),
        rejected=sum(w.rejected for w in writers),
        delivered=sum(w.delivered for w in writers),
        pending=sum(w.pending for w in writers),
        stored=dispatcher.stored if dispatcher else 0,
        duplicates=dispatcher.duplicates if dispatcher else 0,
        dispatcher=dispatcher,
    )
