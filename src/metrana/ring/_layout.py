"""The writer<->dispatcher contract in shared memory: the complete binary format of a ring.

This docstring is the specification; every slot constant below is listed in it (a test checks
that the two agree). Format version 4.

One writer process owns one *ring* in a session directory: a meta file, one or more segment
files and a declarations file. The writer process is the only producer; the dispatcher the
only consumer. Every slot is written by one side only, with a single aligned 8-byte store into
a ``memoryview(mmap).cast("Q")`` slot (never ``struct.pack_into``, which CPython may perform as
two writes that another process can observe half done).

Meta file ``w-<id>.meta``: ``META_BYTES`` bytes of little-endian u64 slots. ``<id>`` is
``<pid>-<create ms>-<n>``: the writer process's identity and its n-th writer.

    slot  constant             owner   meaning
    0     M_MAGIC              writer  MAGIC_META, stored last at creation
    1     M_VERSION            writer  the format version (VERSION)
    2     M_PID                writer  the writer process's pid
    3     M_CREATE_MS          writer  its create time in ms (with the pid, its identity)
    4     M_MAX_EVENTS         writer  the ring's capacity in events (0 = unbounded)
    5     M_SEGMENT_BYTES      writer  bytes of data per segment
    8     M_WRITTEN            writer  records written (republished by the watchdog)
    9     M_DROPPED            writer  points dropped because the ring was full
    10    M_STATE              writer  STATE_OPEN or STATE_CLOSED
    11    M_CLOSE_STRATEGY     writer  the close strategy's code (CLOSE_CODES)
    12    M_WRITE_SEGMENT      writer  the number of the segment being written
    13    M_LOGGED             writer  points logged (written at close)
    14    M_DECLARED           writer  series declaration records written
    15    M_BULK_EXTRA         writer  points beyond one per bulk record written (so that
                                       points logged = records - declarations - CLOSE + this;
                                       republished with M_WRITTEN)
    16    M_COMMITTED          reader  records committed (delivered, spooled or discarded)
    17    M_DISCARDED          reader  points discarded by the close strategy
    19    M_CLOSE_ACK          reader  1 once the reader committed the CLOSE record
    21    M_COMMITTED_POINTS   reader  points committed
    22    M_REJECTED           reader  points the target rejected for good (dropped, counted)
    23    M_SUBMITTED          reader  records ever handed to the target (a high-water mark):
                                       what a successor re-reads below it may be stored already
    24    M_COMMIT_SEGMENT     reader  the commit being made: its segment,
    25    M_COMMIT_POSITION    reader  position and
    26    M_COMMIT_RECORDS     reader  record count, stored before the commit's other slots, so
                                       that a commit a killed reader left half done is finished
    27    M_RANK               writer  the writer's RANK (or LOCAL_RANK) plus one; 0: unknown

Segment file ``w-<id>.<n>.seg``: ``SEGMENT_HEADER`` bytes of u64 slots, then ``capacity``
bytes of data.

    slot  constant             owner   meaning
    0     S_MAGIC              writer  MAGIC_SEGMENT, stored last at creation
    1     S_NUMBER             writer  the segment's number n
    2     S_CAPACITY           writer  bytes of data
    8     S_PUBLISHED          writer  the published word (below)
    9     S_SEALED             writer  1 once the writer moved on to segment n + 1
    10    S_WRAP_POSITION      writer  where the data of the last lap left ended,
    11    S_WRAP_RECORDS       writer  and the record count there
    16    S_READ_POS           reader  the committed read position
    128   S_CHECKPOINTS        writer  CHECKPOINT_SLOTS slots: the published word after every
                                       CHECKPOINT-th record (record count c in slot
                                       128 + c // CHECKPOINT % CHECKPOINT_SLOTS)

Records are msgpack values written back to back, with no header or padding between them (their
kinds and values: ``metrana.ring._records``; every record is five values), so that the reader
decodes a whole unread span with one msgspec call: it copies the span behind an array header
holding the value count. A record never straddles the end of the data: the writer leaves the
tail of the lap unused, notes where the lap's data ended (slots 10 and 11), and continues at
offset 0.

Bulk records (format 4): ``FLOATS`` and ``INTS`` records carry a run of consecutive points of
one series as one msgpack bin of raw little-endian float64 or int64 values (8 bytes a point),
``METRICS`` records one step of several series; each is one record (one published word, one
unit of ``M_MAX_EVENTS``) whatever its number of points, and is appended, or refused when the
ring is full, as a whole. A bulk record's values take at most a quarter of the segment's
capacity (``max_bulk_values``), so that it always fits once the reader has caught up. A
checkpoint every 1,024 records is more than a ring of bulk records holds: a reader stops a
span of big records at a record boundary it finds by walking their msgpack values
(``metrana.ring._boundaries``), or at the wrap, so that it decodes about a megabyte at a time.

Positions are absolute and only increase; ``position % capacity`` is the offset in the data,
``position // capacity`` the lap. After each record the writer publishes, in one store, the
*published word*: its record count modulo 2**28 (bits 36-63), its lap modulo 256 (bits 28-35)
and its offset in the lap (bits 0-27). The reader, which knows its own absolute cursor, unwraps
both to absolute values: the unread span never holds 2**28 records or a lap more than one ahead
(the writer never overwrites what the reader has not committed). Because the word is stored
after the record's bytes, the reader never sees a partial record. The checkpoints let a reader
stop a span at a record boundary and so bound what it decodes at once. With ``max events = 0``
a full segment is sealed and the writer continues in a new one; the reader deletes sealed
segments once it has committed past them.

Declarations file ``w-<id>.series``: every series declaration record the writer made, each as
a u32 little-endian length then the msgpack 5-tuple, appended once per series. A replacement
dispatcher that starts from a committed position after the DECLARE records still knows every
series.
"""

from __future__ import annotations

from pathlib import Path

from .._enums import CloseStrategy

__all__ = [
    "ARRAY32",
    "BYTES_PER_EVENT",
    "CHECKPOINT",
    "CHECKPOINT_SLOTS",
    "CLOSE_CODES",
    "CLOSE_STRATEGY_OF_CODE",
    "COUNT_MASK",
    "COUNT_SHIFT",
    "LAP_MASK",
    "MAGIC_META",
    "MAGIC_SEGMENT",
    "MAX_EVENTS",
    "MAX_SEGMENT_BYTES",
    "META_BYTES",
    "MIN_SEGMENT",
    "M_BULK_EXTRA",
    "M_CLOSE_ACK",
    "M_CLOSE_STRATEGY",
    "M_COMMITTED",
    "M_COMMITTED_POINTS",
    "M_COMMIT_POSITION",
    "M_COMMIT_RECORDS",
    "M_COMMIT_SEGMENT",
    "M_CREATE_MS",
    "M_DECLARED",
    "M_DISCARDED",
    "M_DROPPED",
    "M_LOGGED",
    "M_MAGIC",
    "M_MAX_EVENTS",
    "M_PID",
    "M_RANK",
    "M_REJECTED",
    "M_SEGMENT_BYTES",
    "M_STATE",
    "M_SUBMITTED",
    "M_VERSION",
    "M_WRITE_SEGMENT",
    "M_WRITTEN",
    "OFFSET_BITS",
    "OFFSET_MASK",
    "RECORD_UNIT",
    "SEGMENT_HEADER",
    "STATE_CLOSED",
    "STATE_OPEN",
    "S_CAPACITY",
    "S_CHECKPOINTS",
    "S_MAGIC",
    "S_NUMBER",
    "S_PUBLISHED",
    "S_READ_POS",
    "S_SEALED",
    "S_WRAP_POSITION",
    "S_WRAP_RECORDS",
    "UNBOUNDED_SEGMENT",
    "VERSION",
    "WORD_LIMIT",
    "declarations_name",
    "max_bulk_values",
    "meta_name",
    "published_word",
    "segment_capacity",
    "segment_name",
    "unwrap",
    "writer_id_of",
    "writer_id_of_name",
    "writer_process",
    "writer_process_of",
]


MAGIC_META = 0x4D45545241_4D5441  # "METRA" "MTA"
MAGIC_SEGMENT = 0x4D45545241_534547  # "METRA" "SEG"
VERSION = 4
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
# Points beyond one per bulk record: the points a writer logged are its records minus its
# declarations and CLOSE record, plus this.
M_BULK_EXTRA = 15
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


def max_bulk_values(capacity: int) -> int:
    """The most values one bulk record may carry in a segment of ``capacity`` bytes: a quarter
    of it, at 8 bytes a value."""
    return capacity // 4 // 8


def meta_name(writer_id: str) -> str:
    return f"w-{writer_id}.meta"


def segment_name(writer_id: str, number: int) -> str:
    return f"w-{writer_id}.{number:06d}.seg"


def declarations_name(writer_id: str) -> str:
    return f"w-{writer_id}.series"


def writer_id_of(meta_path: Path) -> str:
    return writer_id_of_name(meta_path.name)


def writer_id_of_name(meta_name: str) -> str:
    return meta_name[2 : -len(".meta")]


def writer_process(writer_id: str) -> tuple[int, int]:
    """(pid, create time in ms) of a writer, from its id ``<pid>-<create ms>-<n>``; raises
    ValueError for an id of another form."""
    pid, create_ms, _ = writer_id.split("-", 2)
    return int(pid), int(create_ms)


def writer_process_of(meta_path: Path) -> tuple[int, int]:
    """(pid, create time in ms) of the writer of a ring file."""
    return writer_process(writer_id_of(meta_path))


# The close strategy a writer stores in M_CLOSE_STRATEGY.
CLOSE_CODES = {
    CloseStrategy.COMPLETE_PENDING: 0,
    CloseStrategy.IMMEDIATE: 1,
    CloseStrategy.COMPLETE_ALL: 2,
}
CLOSE_STRATEGY_OF_CODE = {code: strategy for strategy, code in CLOSE_CODES.items()}
