"""The producer side of a ring: ``RingWriter.append`` is the hot path of ``metrana.log()``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ._declarations import DeclarationLog
from ._layout import (
    CHECKPOINT,
    CHECKPOINT_SLOTS,
    COUNT_SHIFT,
    M_COMMITTED,
    M_CREATE_MS,
    M_MAGIC,
    M_MAX_EVENTS,
    M_PID,
    M_SEGMENT_BYTES,
    M_VERSION,
    M_WRITE_SEGMENT,
    M_WRITTEN,
    MAGIC_META,
    META_BYTES,
    RECORD_UNIT,
    S_CHECKPOINTS,
    S_PUBLISHED,
    S_READ_POS,
    S_SEALED,
    S_WRAP_POSITION,
    S_WRAP_RECORDS,
    VERSION,
    WORD_LIMIT,
    declarations_name,
    meta_name,
    published_word,
    segment_capacity,
    segment_name,
)
from ._mapping import Segment, map_file

__all__ = [
    "RingWriter",
]


class RingWriter:
    """The producer side: appends encoded records; owned by exactly one process.

    ``append`` is the hot path of ``metrana.log()``: a closure over local state, so that a
    record costs one slice copy and one store of the published word.
    """

    def __init__(
        self,
        directory: Path,
        writer_id: str,
        pid: int,
        create_ms: int,
        max_events: int,
    ) -> None:
        self.directory = directory
        self.writer_id = writer_id
        self.max_events = max_events
        self.capacity = segment_capacity(max_events)
        self.meta_path = directory / meta_name(writer_id)
        self._segment = Segment(
            directory / segment_name(writer_id, 0), 0, self.capacity, create=True
        )
        self._mm, meta = map_file(self.meta_path, META_BYTES, create=True)
        meta[M_VERSION] = VERSION
        meta[M_PID] = pid
        meta[M_CREATE_MS] = create_ms
        meta[M_MAX_EVENTS] = max_events
        meta[M_SEGMENT_BYTES] = self.capacity
        meta[M_MAGIC] = MAGIC_META
        self.meta = meta
        self.append = self._make_append()
        self.declarations = DeclarationLog(directory / declarations_name(writer_id))

    @property
    def written(self) -> int:
        """Records appended so far (this process's own count, always exact)."""
        return self._count()

    def publish_written(self) -> None:
        """Publish the record count in the meta file for other processes (stats, close)."""
        self.meta[M_WRITTEN] = self._count()

    def committed(self) -> int:
        """Records the consumer has committed (delivered or discarded)."""
        return int(self.meta[M_COMMITTED])

    def _make_append(self) -> Callable[[bytes], bool]:
        meta = self.meta
        max_events = self.max_events
        capacity = self.capacity
        segment = self._segment
        view, slots = segment.view, segment.slots
        unit = RECORD_UNIT
        lap = 0
        offset = 0  # where the next record goes in this lap
        word = 0  # the published word; the fast path adds unit + length per record
        # Records written up to the last slow path, and the word then: the count is
        # written + (word - word_base) >> COUNT_SHIFT (the offset field never carries).
        written = 0
        word_base = 0
        # Fast path bounds: below these, a record needs no wrap, no refresh, no chaining.
        lap_limit = capacity  # min(end of this lap, committed read position + capacity)
        # min(the event limit, the next checkpoint, the count field's maximum)
        word_limit = min(max_events, CHECKPOINT) * unit if max_events else CHECKPOINT * unit

        def count() -> int:
            return written + ((word - word_base) >> COUNT_SHIFT)

        def append(record: bytes) -> bool:
            """Append one encoded record. Returns False, writing nothing, when the ring is
            full."""
            nonlocal offset, word
            n = len(record)
            if word < word_limit and offset + n <= lap_limit:
                view[offset : offset + n] = record
                offset += n
                word += unit + n
                slots[S_PUBLISHED] = word
                return True
            return slow(record, n)

        def slow(record: bytes, n: int) -> bool:
            nonlocal lap, offset, word, written, word_base, lap_limit, word_limit
            nonlocal segment, view, slots
            written += (word - word_base) >> COUNT_SHIFT
            word_base = word
            meta[M_WRITTEN] = written
            if written % CHECKPOINT == 0:
                slots[S_CHECKPOINTS + written // CHECKPOINT % CHECKPOINT_SLOTS] = word
            committed = meta[M_COMMITTED] if max_events else 0
            if max_events and written >= committed + max_events:
                word_limit = word  # the slow path again until the reader commits
                return False
            if n > capacity:
                raise ValueError(f"a record of {n} bytes does not fit a {capacity} B ring")
            read = slots[S_READ_POS]
            position = lap * capacity + offset
            wrap = offset + n > capacity
            start = (lap + 1) * capacity if wrap else position
            # everything committed: the unused tail of the lap is free too
            free_from = start if read == position else read
            if start + n - free_from > capacity:
                if max_events:
                    lap_limit = offset  # the slow path again until the reader commits
                    return False
                # unbounded: seal this segment and continue in a new one
                number = segment.number + 1
                old = segment
                segment = Segment(
                    self.directory / segment_name(self.writer_id, number), number, capacity, True
                )
                view, slots = segment.view, segment.slots
                self._segment = segment
                meta[M_WRITE_SEGMENT] = number
                old.slots[S_SEALED] = 1
                old.close()
                lap = offset = read = 0
            elif wrap:
                # where this lap's data ends, for the reader, before any word beyond it
                slots[S_WRAP_POSITION] = position
                slots[S_WRAP_RECORDS] = written
                lap += 1
                offset = 0
            view[offset : offset + n] = record
            offset += n
            written += 1
            word = word_base = published_word(written, lap, offset)
            slots[S_PUBLISHED] = word
            if written % CHECKPOINT == 0:  # (the fast path stops before the next one)
                slots[S_CHECKPOINTS + written // CHECKPOINT % CHECKPOINT_SLOTS] = word
            lap_limit = min(capacity, read + capacity - lap * capacity)
            records_left = CHECKPOINT - written % CHECKPOINT
            if max_events:
                records_left = min(records_left, committed + max_events - written)
            word_limit = min(word + records_left * unit, WORD_LIMIT)
            return True

        self._count = count
        return append

    def set_slot(self, slot: int, value: int) -> None:
        self.meta[slot] = value

    def get_slot(self, slot: int) -> int:
        return int(self.meta[slot])

    def close(self) -> None:
        """Unmap the files (they stay for the consumer)."""
        self.append = _closed_append
        self.declarations.close()
        self._segment.close()
        self.meta.release()
        self._mm.close()


def _closed_append(record: bytes) -> bool:
    raise ValueError("append to a closed ring")
