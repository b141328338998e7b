"""The consumer side of a ring: reads ahead, commits behind (the dispatcher's)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import msgspec

from .._errors import MetranaCorruptRingError
from ._boundaries import cut_after
from ._layout import (
    ARRAY32,
    CHECKPOINT,
    CHECKPOINT_SLOTS,
    M_COMMIT_POSITION,
    M_COMMIT_RECORDS,
    M_COMMIT_SEGMENT,
    M_COMMITTED,
    M_CREATE_MS,
    M_MAGIC,
    M_PID,
    M_SEGMENT_BYTES,
    M_VERSION,
    M_WRITTEN,
    MAGIC_META,
    META_BYTES,
    S_CHECKPOINTS,
    S_PUBLISHED,
    S_READ_POS,
    S_SEALED,
    S_WRAP_POSITION,
    S_WRAP_RECORDS,
    VERSION,
    segment_name,
    unwrap,
    writer_id_of,
)
from ._mapping import Segment, map_file

__all__ = [
    "Cursor",
    "RingReader",
]

# A span of big records (BIG_RECORD bytes or more on average: bulk records) longer than this
# is cut at a record boundary after about this many bytes, so that a ring full of arrays is
# read, decoded and batched a megabyte at a time, not a ring at a time.
MAX_SPAN_BYTES = 1 << 20
BIG_RECORD = 512


class Cursor:
    """A read position in one writer: segment number, position in it, records consumed."""

    __slots__ = ("position", "records", "segment")

    def __init__(self, segment: int, position: int, records: int) -> None:
        self.segment = segment
        self.position = position
        self.records = records

    def copy(self) -> Cursor:
        return Cursor(self.segment, self.position, self.records)


class RingReader:
    """The consumer side of one writer: reads ahead, commits behind."""

    def __init__(
        self,
        meta_path: Path,
        decoder: msgspec.msgpack.Decoder[list[Any]],
        values_per_record: int = 1,
    ) -> None:
        """``decoder`` decodes a span as a msgpack array (the reader puts the array header in
        front of it) of ``values_per_record`` values per record: ``read`` returns that flat
        list of values."""
        self.meta_path = meta_path
        self.directory = meta_path.parent
        self.writer_id = writer_id_of(meta_path)
        self._mm, meta = map_file(meta_path, META_BYTES, create=False)
        problem = None
        if meta[M_MAGIC] != MAGIC_META:
            problem = "is not a Metrana ring (bad magic)"
        elif meta[M_VERSION] != VERSION:
            problem = (
                f"is a ring of format {meta[M_VERSION]}, this Metrana reads format {VERSION}: "
                "its writer runs another Metrana version; run every process of the job with "
                "the same version"
            )
        if problem is not None:
            meta.release()
            self._mm.close()
            raise MetranaCorruptRingError(f"{meta_path} {problem}")
        self.meta = meta
        self.pid = int(meta[M_PID])
        self.create_ms = int(meta[M_CREATE_MS])
        self._decode = decoder.decode
        self._values_per_record = values_per_record
        self._drained_word = -1  # the published word when the cursor last reached its end
        self._segments: dict[int, Segment] = {}
        self.committed = self._recover_commit()
        self.cursor = self.committed.copy()

    def _recover_commit(self) -> Cursor:
        """The committed cursor, completing a commit that a killed consumer left half done."""
        meta = self.meta
        intent = Cursor(
            int(meta[M_COMMIT_SEGMENT]), int(meta[M_COMMIT_POSITION]), int(meta[M_COMMIT_RECORDS])
        )
        first = self._first_segment()
        if intent.records and intent.segment >= first:
            try:
                read_position = self._open_segment(intent.segment).slots[S_READ_POS]
            except FileNotFoundError:
                read_position = -1
            if int(meta[M_COMMITTED]) == intent.records or read_position == intent.position:
                self._apply_commit(intent, scan=True)  # finish it: count, then older segments
                return intent
        start = self._open_segment(first)
        return Cursor(first, int(start.slots[S_READ_POS]), int(meta[M_COMMITTED]))

    def _segment_numbers(self) -> list[int]:
        """The numbers of this writer's segment files on disk."""
        prefix = f"w-{self.writer_id}."
        return [
            int(p.name[len(prefix) : -len(".seg")]) for p in self.directory.glob(f"{prefix}*.seg")
        ]

    def _first_segment(self) -> int:
        numbers = self._segment_numbers()
        if not numbers:
            raise MetranaCorruptRingError(f"ring {self.meta_path} has no segment file")
        return min(numbers)

    def _open_segment(self, number: int) -> Segment:
        segment = self._segments.get(number)
        if segment is None:
            path = self.directory / segment_name(self.writer_id, number)
            capacity = int(self.meta[M_SEGMENT_BYTES])
            segment = Segment(path, number, capacity, create=False)
            self._segments[number] = segment
        return segment

    def slot(self, index: int) -> int:
        return int(self.meta[index])

    def set_slot(self, index: int, value: int) -> None:
        self.meta[index] = value

    def add_to_slot(self, index: int, value: int) -> None:
        self.meta[index] = self.meta[index] + value

    def pending(self) -> int:
        """Records written but not yet read by this reader (as last published by the writer)."""
        return int(self.meta[M_WRITTEN]) - self.cursor.records

    def read(self, limit: int) -> list[Any]:
        """Decode the records after the read cursor and advance it: the span published in the
        reader's segment (after the sealed ones it has finished), in one msgspec call, whole or
        up to the writer's last checkpoint within ``limit`` records (so more than ``limit``
        may come back when there is none). Returns their values, in one flat list; [] when
        there is nothing new."""
        cursor = self.cursor
        while True:
            segment = self._open_segment(cursor.segment)
            sealed = segment.slots[S_SEALED]  # before the word: a sealed segment's word is final
            word = segment.slots[S_PUBLISHED]
            if word == self._drained_word and not sealed:
                return []  # nothing new since the last look (the cheap case of an idle ring)
            values = self._read_span(segment, cursor, word, limit)
            if values is not None:
                return values
            if not sealed:
                self._drained_word = word
                return []
            cursor.segment += 1
            cursor.position = 0

    def _read_span(
        self, segment: Segment, cursor: Cursor, word: int, limit: int
    ) -> list[Any] | None:
        """The records published after ``cursor`` in ``segment`` up to ``word`` (None if there
        is none): all of them, or up to the last checkpoint within ``limit`` records."""
        slots = segment.slots
        capacity = segment.capacity
        position = cursor.position
        if word == 0:
            return None  # a new segment whose writer has not published its first record yet
        end, end_records = unwrap(word, capacity, position, cursor.records)
        if end_records - cursor.records > limit:
            end, end_records = self._checkpoint(segment, cursor, limit, end, end_records)
        count = end_records - cursor.records
        lap_start = position - position % capacity
        if count == 0 and end == position:
            return None
        view = segment.view
        # the records of this lap: a span of big records is cut among them (below)
        lap_end, lap_records = end, count
        if count > 0 and position < end <= lap_start + capacity:
            parts = [view[position - lap_start : end - lap_start]]
        elif count > 0 and lap_start + capacity < end <= lap_start + 2 * capacity:
            # the writer wrapped: this lap's data ends where it noted, the rest is at offset 0
            wrap_position = slots[S_WRAP_POSITION]
            wrap_records = slots[S_WRAP_RECORDS]
            # (the next lap may reach past this position only when nothing was left to read)
            overlap = wrap_position > position and end - capacity > position
            if (
                not position <= wrap_position <= lap_start + capacity
                or not cursor.records <= wrap_records <= end_records
                or overlap
            ):
                raise self._corrupt(segment, position, "an inconsistent wrap")
            parts = [
                view[position - lap_start : wrap_position - lap_start],
                view[0 : end - lap_start - capacity],
            ]
            lap_end, lap_records = wrap_position, wrap_records - cursor.records
        else:
            raise self._corrupt(segment, position, f"a published word of {count} records to {end}")
        # A span of big (bulk) records, with no checkpoint among them, is cut at a record
        # boundary after about MAX_SPAN_BYTES: within this lap's records, or at the wrap.
        if lap_records == 0 and len(parts) == 2:  # everything is at the start of the next lap
            base, first, last, records_there = lap_start + capacity, 0, len(parts[1]), count
        else:
            base, first, last, records_there = (
                lap_start,
                position - lap_start,
                lap_end - lap_start,
                lap_records,
            )
        big = end - position > BIG_RECORD * count
        if big and records_there > 1 and last - first > MAX_SPAN_BYTES:
            cut = self._cut(view, first, last, records_there)
            if cut is not None:
                records, cut_end, cut_records = cut
                cursor.position = base + cut_end
                cursor.records += cut_records
                return records
        if big and len(parts) == 2 and lap_records and sum(map(len, parts)) > MAX_SPAN_BYTES:
            try:  # this lap's records only; the next lap's at the next read
                records = self._decode_records(parts[:1], lap_records)
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass  # (not for what a writer wrote) the span whole, below
            else:
                cursor.position = lap_end
                cursor.records += lap_records
                return records
        try:
            records = self._decode_records(parts, count)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            what = f"{count} records that do not decode ({error})"
            raise self._corrupt(segment, position, what) from error
        cursor.position = end
        cursor.records = end_records
        return records

    def _cut(
        self, view: memoryview, start: int, end: int, records: int
    ) -> tuple[list[Any], int, int] | None:
        """The first of ``records`` records in ``view[start:end]`` up to about MAX_SPAN_BYTES,
        decoded, with the offset where they end and their count; None when they cannot be cut
        (the caller then takes the span whole)."""
        cut = cut_after(view, start, end, records, self._values_per_record, MAX_SPAN_BYTES)
        if cut is None:
            return None
        cut_end, cut_records = cut
        try:
            decoded = self._decode_records([view[start:cut_end]], cut_records)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None  # (not for what a writer wrote)
        return decoded, cut_end, cut_records

    def _decode_records(self, parts: list[memoryview], count: int) -> list[Any]:
        """The values of the ``count`` records whose bytes are ``parts``, in one msgspec call."""
        values = count * self._values_per_record
        decoded: list[Any] = self._decode(b"".join([ARRAY32, values.to_bytes(4, "big"), *parts]))
        return decoded

    @staticmethod
    def _checkpoint(
        segment: Segment, cursor: Cursor, limit: int, end: int, end_records: int
    ) -> tuple[int, int]:
        """(end, records) of the last checkpoint after ``cursor`` and within ``limit`` records,
        if the writer's table still holds it; else the published (``end``, ``end_records``)."""
        wanted = (cursor.records + limit) // CHECKPOINT * CHECKPOINT
        if wanted <= cursor.records:
            return end, end_records
        word = segment.slots[S_CHECKPOINTS + wanted // CHECKPOINT % CHECKPOINT_SLOTS]
        at, records = unwrap(word, segment.capacity, cursor.position, cursor.records)
        if records != wanted or not cursor.position < at <= end:
            return end, end_records  # overwritten by a later checkpoint (or never written)
        return at, records

    @staticmethod
    def _corrupt(segment: Segment, position: int, what: str) -> MetranaCorruptRingError:
        return MetranaCorruptRingError(
            f"ring {segment.path}: {what} after position {position}; the file was modified by "
            "something other than its writer"
        )

    def rewind(self) -> None:
        """Forget what was read but not committed (it will be read again)."""
        self.cursor = self.committed.copy()
        self._drained_word = -1

    def commit(self, cursor: Cursor | None = None) -> None:
        """Publish ``cursor`` (default: the read cursor) as committed; free what it passed."""
        target = (cursor or self.cursor).copy()
        if target.records < self.committed.records:
            return  # never move backwards
        meta = self.meta
        meta[M_COMMIT_SEGMENT] = target.segment
        meta[M_COMMIT_POSITION] = target.position
        meta[M_COMMIT_RECORDS] = target.records
        self._open_segment(target.segment).slots[S_READ_POS] = target.position
        self._apply_commit(target)
        self.committed = target

    def _apply_commit(self, target: Cursor, scan: bool = False) -> None:
        """The steps of a commit after the read position: the count, then freed segments
        (those this reader opened, or with ``scan`` every file on disk)."""
        self.meta[M_COMMITTED] = target.records
        numbers = set(self._segments)
        if scan:
            numbers.update(self._segment_numbers())
        for number in sorted(numbers):
            if number < target.segment:
                segment = self._segments.pop(number, None)
                if segment is not None:
                    segment.close()
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / segment_name(self.writer_id, number)).unlink()

    def drained(self) -> bool:
        """True when every record written so far has been committed."""
        committed = self.committed
        segment = self._open_segment(committed.segment)
        if segment.slots[S_SEALED]:
            return False
        word = segment.slots[S_PUBLISHED]
        if word == 0:
            return True  # nothing published in this segment yet
        _, written = unwrap(word, segment.capacity, committed.position, committed.records)
        return written == committed.records

    def close(self) -> None:
        for segment in self._segments.values():
            segment.close()
        self._segments.clear()
        self.meta.release()
        self._mm.close()

    def delete(self) -> None:
        """Close and remove every file of this writer."""
        self.close()
        for path in self.directory.glob(f"w-{self.writer_id}.*"):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
