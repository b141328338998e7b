"""Single-producer single-consumer rings of msgpack records in mmap'd files.

One writer process owns one *writer* in a session directory: a meta file and one or more
segment files. The writer process is the only producer; the dispatcher the only consumer.
Every position is written by one side only, with a single aligned 8-byte store into a
``memoryview(mmap).cast("Q")`` slot (never ``struct.pack_into``, which CPython may perform as two
writes that another process can observe half done).

Meta file ``w-<id>.meta`` (``META_BYTES`` bytes, little-endian u64 slots)::

    0 magic  1 version  2 pid  3 create time (ms)  4 max events (0 = unbounded)
    5 segment capacity (bytes)
    writer-owned:  8 records written   9 points dropped (ring full)  10 state (0 open, 1 closed)
                  11 close strategy code  12 current write segment
                  13 points logged (written at close; live: records - declarations)
                  14 series declarations
    reader-owned: 16 records committed 17 points discarded by close 18 duplicate points
                  19 close acknowledged  20 points stored (new)  21 points committed
                  22 points rejected by the target (dropped, counted)

Segment file ``w-<id>.<n>.seg``: a ``SEGMENT_HEADER`` byte header of u64 slots, then ``capacity``
bytes of data::

    0 magic  1 segment number  2 capacity
    writer-owned:  8 published word   9 sealed (1 when the writer moved to the next segment)
                  10 wrap position   11 wrap records (where the data of the last lap left ended)
    reader-owned: 16 committed read position

Records are msgpack values written back to back, with no header or padding between them, so
that the reader decodes a whole unread span with one msgspec call (it copies the span behind
an array header holding the record count). A record never straddles the end of the data: the
writer leaves the tail of the lap unused, notes where the lap's data ended (slots 10 and 11),
and continues at offset 0.

Positions are absolute and only increase; ``position % capacity`` is the offset in the data,
``position // capacity`` the lap. After each record the writer publishes, in one store, the
*published word*: the writer's record count modulo 2**28 (bits 36-63), its lap modulo 256
(bits 28-35) and its offset in the lap (bits 0-27). The reader, which knows its own absolute
cursor, unwraps both to absolute values: the unread span never holds 2**28 records or a lap more
than one ahead (the writer never overwrites what the reader has not committed). Because the
word is stored after the record's bytes, the reader never sees a partial record. With
``max events = 0`` a full segment is sealed and the writer continues in a new one; the reader
deletes sealed segments once it has committed past them.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from ._errors import MetranaCorruptRingError

MAGIC_META = 0x4D45545241_4D5441  # "METRA" "MTA"
MAGIC_SEGMENT = 0x4D45545241_534547  # "METRA" "SEG"
VERSION = 3
META_BYTES = 4096
SEGMENT_HEADER = 4096
BYTES_PER_EVENT = 48
MIN_SEGMENT = 64 * 1024
UNBOUNDED_SEGMENT = 4 * 1024 * 1024
# The published word: record count (mod 2**28) | lap (mod 256) | offset in the lap.
OFFSET_BITS = 28
OFFSET_MASK = (1 << OFFSET_BITS) - 1
LAP_MASK = 0xFF
COUNT_SHIFT = 36
COUNT_MASK = (1 << 28) - 1
RECORD_UNIT = 1 << COUNT_SHIFT  # what one record adds to the count field
# The fast path adds records while the count field is below its maximum; the slow path folds
# the count modulo 2**28, so that the word always fits 64 bits.
WORD_LIMIT = COUNT_MASK << COUNT_SHIFT
MAX_SEGMENT_BYTES = (1 << OFFSET_BITS) - 4096  # an offset equal to the capacity must fit
MAX_EVENTS = MAX_SEGMENT_BYTES // BYTES_PER_EVENT
ARRAY32 = b"\xdd"  # the msgpack header of an array of up to 2**32 - 1 items

# meta slots
M_MAGIC, M_VERSION, M_PID, M_CREATE_MS, M_MAX_EVENTS, M_SEGMENT_BYTES = 0, 1, 2, 3, 4, 5
M_WRITTEN, M_DROPPED, M_STATE, M_CLOSE_STRATEGY, M_WRITE_SEGMENT, M_LOGGED = 8, 9, 10, 11, 12, 13
M_DECLARED = 14
M_COMMITTED, M_DISCARDED, M_CLOSE_ACK = 16, 17, 19
M_COMMITTED_POINTS, M_REJECTED = 21, 22
# Records ever handed to the target (a high-water mark): a successor dispatcher knows that what
# it re-reads below it may already be stored, and counts those duplicates as replays.
M_SUBMITTED = 23
# The commit being made (segment, position, records), written before the commit's other
# stores, so that a reader opened after a consumer was killed mid-commit finds a consistent
# (position, record count) pair.
M_COMMIT_SEGMENT, M_COMMIT_POSITION, M_COMMIT_RECORDS = 24, 25, 26
# The writer's rank plus one (0: unknown), from RANK / LOCAL_RANK, for system metrics and status.
M_RANK = 27
# segment slots
S_MAGIC, S_NUMBER, S_CAPACITY, S_PUBLISHED, S_SEALED, S_READ_POS = 0, 1, 2, 8, 9, 16
S_WRAP_POSITION, S_WRAP_RECORDS = 10, 11
# Checkpoints: the published word after every CHECKPOINT-th record, in a table of
# CHECKPOINT_SLOTS slots (the slot of record count c is c // CHECKPOINT % CHECKPOINT_SLOTS), so
# that a reader can stop a span at a record boundary and bound what it decodes at once.
S_CHECKPOINTS = 128
CHECKPOINT = 1024
CHECKPOINT_SLOTS = 128

STATE_OPEN, STATE_CLOSED = 0, 1


def published_word(records: int, lap: int, offset: int) -> int:
    """The word a writer publishes after its ``records``-th record, which ended at ``offset``
    of lap ``lap``. Never 0 (the offset of a lap's last record is at least 1): 0 is the word
    of a segment with nothing published yet."""
    return ((records & COUNT_MASK) << COUNT_SHIFT) | ((lap & LAP_MASK) << OFFSET_BITS) | offset


def unwrap(word: int, capacity: int, position: int, records: int) -> tuple[int, int]:
    """(end position, records written) of a published word, for a reader at (``position``,
    ``records``) of the same segment: the word holds both modulo, the reader knows the rest."""
    lap = position // capacity
    lap_delta = ((((word >> OFFSET_BITS) & LAP_MASK) - lap + 128) & LAP_MASK) - 128
    end = (lap + lap_delta) * capacity + (word & OFFSET_MASK)
    return end, records + (((word >> COUNT_SHIFT) - records) & COUNT_MASK)


def segment_capacity(max_events: int) -> int:
    """Bytes of data per segment for a ring of ``max_events`` events (0 = unbounded)."""
    if max_events == 0:
        return UNBOUNDED_SEGMENT
    wanted = max(max_events * BYTES_PER_EVENT, MIN_SEGMENT)
    return min((wanted + 4095) // 4096 * 4096, MAX_SEGMENT_BYTES)


def meta_name(writer_id: str) -> str:
    return f"w-{writer_id}.meta"


def segment_name(writer_id: str, number: int) -> str:
    return f"w-{writer_id}.{number:06d}.seg"


def declarations_name(writer_id: str) -> str:
    return f"w-{writer_id}.series"


class DeclarationLog:
    """The writer's series declarations, also kept outside the ring: a replacement dispatcher
    that starts from a committed position after the DECLARE records still knows every series.
    Length-prefixed msgpack records, appended with O_APPEND, once per series."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def append(self, record: bytes) -> None:
        os.write(self._fd, len(record).to_bytes(4, "little") + record)

    def close(self) -> None:
        os.close(self._fd)


def read_declarations(path: Path) -> list[bytes]:
    """The complete records of a declarations file (a torn last record is ignored)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records = []
    offset = 0
    while offset + 4 <= len(data):
        length = int.from_bytes(data[offset : offset + 4], "little")
        if offset + 4 + length > len(data):
            break
        records.append(data[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return records


def writer_id_of(meta_path: Path) -> str:
    return writer_id_of_name(meta_path.name)


def writer_id_of_name(meta_name: str) -> str:
    return meta_name[2 : -len(".meta")]


def read_meta(meta_path: Path) -> memoryview | None:
    """A copy of a ring's meta slots, for readers outside the dispatcher (stats, status,
    joiners); None when the file is gone, short or not a ring's."""
    try:
        with open(meta_path, "rb") as handle:
            data = handle.read(META_BYTES)
    except OSError:
        return None
    if len(data) < META_BYTES:
        return None
    meta = memoryview(data).cast("Q")
    return meta if meta[M_MAGIC] == MAGIC_META else None


def writer_process(writer_id: str) -> tuple[int, int]:
    """(pid, create time in ms) of a writer, from its id ``<pid>-<create ms>-<n>``; raises
    ValueError for an id of another form."""
    pid, create_ms, _ = writer_id.split("-", 2)
    return int(pid), int(create_ms)


def writer_process_of(meta_path: Path) -> tuple[int, int]:
    """(pid, create time in ms) of the writer of a ring file."""
    return writer_process(writer_id_of(meta_path))


def _map(path: Path, size: int, create: bool) -> tuple[mmap.mmap, memoryview]:
    flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
    fd = os.open(path, flags, 0o600)
    try:
        if create:
            os.ftruncate(fd, size)
        else:
            actual = os.fstat(fd).st_size
            if actual < size:
                raise MetranaCorruptRingError(
                    f"ring file {path} is {actual} bytes, expected at least {size}"
                )
        mm = mmap.mmap(fd, size)
    finally:
        os.close(fd)
    return mm, memoryview(mm).cast("Q")


class _Segment:
    __slots__ = ("capacity", "mm", "number", "path", "slots", "view")

    def __init__(self, path: Path, number: int, capacity: int, create: bool) -> None:
        self.path = path
        self.number = number
        self.mm, self.slots = _map(path, SEGMENT_HEADER + capacity, create)
        if create:
            self.slots[S_NUMBER] = number
            self.slots[S_CAPACITY] = capacity
            self.slots[S_MAGIC] = MAGIC_SEGMENT
            self.capacity = capacity
        else:
            if self.slots[S_MAGIC] != MAGIC_SEGMENT or self.slots[S_NUMBER] != number:
                raise MetranaCorruptRingError(f"{path} is not segment {number} of a Metrana ring")
            self.capacity = self.slots[S_CAPACITY]
        self.view = memoryview(self.mm)[SEGMENT_HEADER:]

    def close(self) -> None:
        self.view.release()
        self.slots.release()
        self.mm.close()


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
        self._segment = _Segment(
            directory / segment_name(writer_id, 0), 0, self.capacity, create=True
        )
        self._mm, meta = _map(self.meta_path, META_BYTES, create=True)
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
                segment = _Segment(
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
        self._mm, meta = _map(meta_path, META_BYTES, create=False)
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
        self._segments: dict[int, _Segment] = {}
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

    def _open_segment(self, number: int) -> _Segment:
        segment = self._segments.get(number)
        if segment is None:
            path = self.directory / segment_name(self.writer_id, number)
            capacity = int(self.meta[M_SEGMENT_BYTES])
            segment = _Segment(path, number, capacity, create=False)
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
        self, segment: _Segment, cursor: Cursor, word: int, limit: int
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
        else:
            raise self._corrupt(segment, position, f"a published word of {count} records to {end}")
        values = count * self._values_per_record
        data = b"".join([ARRAY32, values.to_bytes(4, "big"), *parts])
        try:
            records: list[Any] = self._decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            what = f"{count} records that do not decode ({error})"
            raise self._corrupt(segment, position, what) from error
        cursor.position = end
        cursor.records = end_records
        return records

    @staticmethod
    def _checkpoint(
        segment: _Segment, cursor: Cursor, limit: int, end: int, end_records: int
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
    def _corrupt(segment: _Segment, position: int, what: str) -> MetranaCorruptRingError:
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
