"""The ring (``metrana.ring``): property tests against a model of its documented format, torn
records, commit and rewind, and a writer and a reader in two processes.

Small rings are made by patching ``segment_capacity`` of ``metrana.ring._writer`` while the
writer is created: the capacity is stored in the meta file, so the reader uses it too. Every
ring lives in a fresh directory under the test's session root (``conftest.isolated`` removes it).
"""

from __future__ import annotations

import mmap
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple
from unittest import mock

import msgspec
import pytest
from conftest import kill_tree
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from metrana import ring as _ring
from metrana._errors import MetranaCorruptRingError
from metrana.ring import _layout as ring_layout_module
from metrana.ring import _reader as ring_reader_module
from metrana.ring import _writer as ring_writer_module
from metrana.ring._boundaries import MAX_WALK

WRITER = "t"
TESTS_DIR = Path(__file__).resolve().parent

# The autouse ``isolated`` fixture only sets environment variables that every example may share;
# each example makes (and removes) its own ring directory.
PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# A regression once lived here: a fast-path record ending exactly at the end of the data left
# the writer's offset at the capacity, and the next append wrote past the end. The any-size
# property test and the real-size test below guard it; the lap-safe scenarios keep every lap
# starting at offset 0 to exercise padding differently.


# -- helpers --------------------------------------------------------------------------------------


def ring_dir() -> Path:
    root = Path(os.environ["METRANA_SESSION_ROOT"])
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="ring-", dir=root))


def make_writer(
    directory: Path, capacity: int, max_events: int, writer_id: str = WRITER
) -> _ring.RingWriter:
    with mock.patch.object(ring_writer_module, "segment_capacity", lambda _max_events: capacity):
        return _ring.RingWriter(directory, writer_id, os.getpid(), 0, max_events)


BYTES_DECODER = msgspec.msgpack.Decoder(list[bytes])


def open_reader(directory: Path, writer_id: str = WRITER) -> _ring.RingReader:
    return _ring.RingReader(directory / _ring.meta_name(writer_id), BYTES_DECODER)


@contextmanager
def ring_pair(
    capacity: int | None, max_events: int
) -> Iterator[tuple[Path, _ring.RingWriter, _ring.RingReader]]:
    """A fresh ring (of the real segment size when ``capacity`` is None), its writer and a
    reader; both closed at the end."""
    directory = ring_dir()
    if capacity is None:
        writer = _ring.RingWriter(directory, WRITER, os.getpid(), 0, max_events)
    else:
        writer = make_writer(directory, capacity, max_events)
    reader = open_reader(directory)
    try:
        yield directory, writer, reader
    finally:
        reader.close()
        writer.close()


def record(payload: bytes) -> bytes:
    """What ``RingWriter.append`` takes: one msgpack value (here a bin holding the payload)."""
    return msgspec.msgpack.encode(payload)


def record_size(payload_length: int) -> int:
    return len(record(bytes(payload_length)))


def read_all(reader: _ring.RingReader) -> list[bytes]:
    """Every record published after the reader's cursor, span after span."""
    out = []
    while batch := reader.read(1):
        out.extend(batch)
    return out


def segment_numbers(directory: Path, writer_id: str = WRITER) -> list[int]:
    prefix = f"w-{writer_id}."
    return sorted(
        int(path.name[len(prefix) : -len(".seg")]) for path in directory.glob(f"{prefix}*.seg")
    )


def make_payload(serial: int, length: int) -> bytes:
    return (serial.to_bytes(4, "little") * (length // 4 + 1))[:length]


@contextmanager
def mapped_segment(
    directory: Path, number: int = 0, writer_id: str = WRITER
) -> Iterator[tuple[memoryview, memoryview]]:
    """A segment file mapped a second time: (header slots, data bytes)."""
    path = directory / _ring.segment_name(writer_id, number)
    with path.open("r+b") as file:
        mm = mmap.mmap(file.fileno(), 0)
    slots = memoryview(mm).cast("Q")
    data = memoryview(mm)[_ring.SEGMENT_HEADER :]
    try:
        yield slots, data
    finally:
        data.release()
        slots.release()
        mm.close()


# -- a model of the ring --------------------------------------------------------------------------


class At(NamedTuple):
    """A reader position in the model: records before it, segment, byte position in it."""

    records: int
    segment: int
    position: int


class RingModel:
    """The ring as documented: records back to back, never straddling the end of the data (the
    rest of the lap is left and the writer wraps); at most ``max events`` records not committed;
    the writer never overwrites bytes after the committed read position; with ``max events = 0``
    a segment with no room is sealed and the writer continues at position 0 of the next one. A
    read returns one span: everything published in the reader's segment, after the sealed
    segments it has finished. (Checkpoints, every 1024 records, are beyond these small
    scenarios: they have tests of their own below.)"""

    def __init__(self, capacity: int, max_events: int) -> None:
        self.capacity = capacity
        self.max_events = max_events
        self.records: list[tuple[bytes, int, int]] = []  # payload, segment, end position
        self.segment = 0  # the writer's segment
        self.position = 0  # the writer's position in it
        self.sealed_end: dict[int, int] = {}
        self.cursor = At(0, 0, 0)
        self.committed = At(0, 0, 0)

    def append(self, payload: bytes) -> bool:
        size = record_size(len(payload))
        capacity = self.capacity
        if self.max_events and len(self.records) >= self.committed.records + self.max_events:
            return False
        offset = self.position % capacity
        pad = capacity - offset if offset + size > capacity else 0
        read = self.committed.position if self.committed.segment == self.segment else 0
        if read == self.position:  # everything committed: the whole data area is free
            read = self.position + pad
        if self.position + pad + size - read > capacity:
            if self.max_events:
                return False
            self.sealed_end[self.segment] = self.position
            self.segment += 1
            self.position = pad = 0
        self.position += pad + size
        self.records.append((payload, self.segment, self.position))
        return True

    def read(self, limit: int) -> list[bytes]:
        records, segment, position = self.cursor
        out: list[bytes] = []
        while True:
            span = [r for r in self.records[records:] if r[1] == segment]
            if span:
                out = [payload for payload, _, _ in span]
                records += len(span)
                position = span[-1][2]
            elif self.sealed_end.get(segment) == position:
                segment, position = segment + 1, 0
                continue
            break
        self.cursor = At(records, segment, position)
        return out

    def read_all(self) -> list[bytes]:
        out = []
        while batch := self.read(1):
            out.extend(batch)
        return out

    def commit(self, target: At) -> None:
        if target.records >= self.committed.records:
            self.committed = target

    def rewind(self) -> None:
        self.cursor = self.committed


def run_scenario(capacity: int, max_events: int, operations: list[tuple[str, int]]) -> None:
    """Apply ``operations`` to a real ring and to the model; they must agree exactly."""
    directory = ring_dir()
    writer = make_writer(directory, capacity, max_events)
    reader = open_reader(directory)
    model = RingModel(capacity, max_events)
    saved: tuple[_ring.Cursor, At] | None = None
    serial = 0
    try:
        for operation, argument in operations:
            if operation == "append":
                serial += 1
                payload = make_payload(serial, argument)
                expected = model.append(payload)
                assert writer.append(record(payload)) is expected, (operation, argument)
            elif operation in ("read", "drain"):
                assert reader.read(argument) == model.read(argument)
                if operation == "drain":  # what the dispatcher does once delivered
                    reader.commit()
                    model.commit(model.cursor)
            elif operation == "commit":
                reader.commit()
                model.commit(model.cursor)
            elif operation == "rewind":
                reader.rewind()
                model.rewind()
            elif operation == "reopen":  # a successor dispatcher starts from the commit
                reader.close()
                reader = open_reader(directory)
                model.rewind()
            elif operation == "save":
                saved = (reader.cursor.copy(), model.cursor)
            elif operation == "commit_saved" and saved is not None:
                cursor, at = saved
                older = at.records < model.committed.records
                if older or model.committed.records < at.records <= model.cursor.records:
                    reader.commit(cursor)
                    model.commit(at)  # an older cursor changes nothing
            assert writer.written == len(model.records)
            assert reader.cursor.records == model.cursor.records
            committed = model.committed
            assert reader.committed.records == committed.records
            assert reader.slot(_ring.M_COMMITTED) == committed.records
            assert (reader.committed.segment, reader.committed.position) == (
                committed.segment,
                committed.position,
            )
            assert reader.drained() is (committed.records == len(model.records))
            # sealed segments are deleted once the commit has passed them
            assert segment_numbers(directory) == list(range(committed.segment, model.segment + 1))
        # finally everything not committed reads back once more, in order, exactly once
        reader.rewind()
        model.rewind()
        assert read_all(reader) == model.read_all()
        assert reader.read(1) == []
    finally:
        reader.close()
        writer.close()
        shutil.rmtree(directory, ignore_errors=True)


def operation_lists(lengths: st.SearchStrategy[int]) -> st.SearchStrategy[list[tuple[str, int]]]:
    appends = st.tuples(st.just("append"), lengths)
    reads = st.tuples(st.sampled_from(["read", "drain"]), st.integers(1, 6))  # drain: + commit
    others = st.tuples(
        st.sampled_from(["commit", "rewind", "reopen", "save", "commit_saved"]), st.just(0)
    )
    return st.lists(st.one_of(appends, appends, reads, others), min_size=10, max_size=100)


MAX_EVENTS = (0, 1, 2, 3, 5, 1000)  # 0 = unbounded: segments are chained


@st.composite
def any_scenario(draw: st.DrawFn) -> tuple[int, int, list[tuple[str, int]]]:
    """Payloads of any length that fits the (tiny) ring."""
    capacity = draw(st.sampled_from((16, 24, 32, 40, 64, 96, 128, 256)))
    max_events = draw(st.sampled_from(MAX_EVENTS))
    return capacity, max_events, draw(operation_lists(st.integers(0, capacity - 8)))


@st.composite
def lap_safe_scenario(draw: st.DrawFn) -> tuple[int, int, list[tuple[str, int]]]:
    """Records of 24·k bytes in rings whose capacity is not a multiple of 24: every lap starts
    at offset 0, so no record ever ends exactly at the end of the data and every wrap leaves
    an unused tail."""
    capacity = draw(st.sampled_from((40, 64, 112, 136, 256)))
    max_events = draw(st.sampled_from(MAX_EVENTS))
    lengths = st.builds(lambda k: 24 * k - 2, st.integers(1, capacity // 24))  # + 2-byte bin
    return capacity, max_events, draw(operation_lists(lengths))


# -- property tests -------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(scenario=lap_safe_scenario())
def test_ring_reads_back_what_was_written_with_wraps_pads_full_rings_and_chaining(
    scenario: tuple[int, int, list[tuple[str, int]]],
) -> None:
    run_scenario(*scenario)


@PROPERTY_SETTINGS
@given(scenario=any_scenario())
@example(scenario=(32, 1000, [("append", 24), ("read", 1), ("commit", 0), ("append", 0)]))
def test_ring_reads_back_what_was_written_for_any_record_sizes(
    scenario: tuple[int, int, list[tuple[str, int]]],
) -> None:
    run_scenario(*scenario)


# -- deterministic cases --------------------------------------------------------------------------


@pytest.mark.parametrize("max_events", [2000, 0], ids=["bounded", "unbounded"])
def test_append_after_a_record_that_ends_exactly_at_the_end_of_the_data(max_events: int) -> None:
    """Real segment sizes: fill the first lap exactly, free it, append again."""
    with ring_pair(None, max_events) as (_directory, writer, reader):
        length = 4096 - 3  # a bin16 header
        records = writer.capacity // 4096  # exactly one lap
        assert writer.capacity % 4096 == 0
        for serial in range(records):
            assert writer.append(record(make_payload(serial, length)))
        if max_events:  # (unbounded, it would chain a segment)
            assert not writer.append(record(make_payload(records, 16)))  # not committed yet
        assert read_all(reader) == [make_payload(serial, length) for serial in range(records)]
        reader.commit()
        assert writer.append(record(make_payload(records, 16)))  # fits at offset 0 of lap 2
        assert writer.append(record(make_payload(records + 1, 16)))
        assert reader.read(1) == [make_payload(records, 16), make_payload(records + 1, 16)]


def _bulk_records(count: int) -> list[tuple[Any, ...]]:
    """Records of every kind as a writer makes them, mostly big ones (8 KiB arrays)."""
    out: list[tuple[Any, ...]] = [(_ring.DECLARE, 0, "m", "ML_STEP", {"rank": "0"})]
    for i in range(count):
        if i % 7 == 3:
            out.append((_ring.METRICS, list(range(300)), i, [0.5] * 299 + [2**40], 1_700_000))
        elif i % 11 == 5:
            out.append((_ring.POINT, 0, i, -1.5, 1_700_000))
        else:
            kind = _ring.INTS if i % 2 else _ring.FLOATS
            out.append((kind, 0, i * 1024, bytes([i % 256]) * 8192, 1_700_000 + i))
    out.append((_ring.CLOSE, "CompleteAll", None, None, None))
    return out


@pytest.mark.parametrize("wrapped", [False, True], ids=["one lap", "wrapped"])
def test_a_span_of_big_records_is_read_a_megabyte_at_a_time_at_record_boundaries(
    wrapped: bool,
) -> None:
    records = _bulk_records(600)  # about 4.6 MB, no checkpoint among them
    capacity = 6 * 1024 * 1024
    with ring_pair(capacity, 0) as (directory, writer, _reader):
        reader = _ring.RingReader(
            directory / _ring.meta_name(WRITER), _ring.span_decoder, _ring.VALUES_PER_RECORD
        )
        try:
            if wrapped:  # the span starts near the end of the lap and goes on at offset 0
                big = bytes(capacity - 3 * 1024 * 1024)
                assert writer.append(_ring.ring_record(_ring.encoder.encode((3, 0, 0, big, 0))))
                reader.read(1)
                reader.commit()
            for item in records:
                assert writer.append(_ring.ring_record(_ring.encoder.encode(item)))
            spans = []
            while values := reader.read(1):
                spans.append(values)
        finally:
            reader.close()
    assert len(spans) >= 4 and all(len(v) % _ring.VALUES_PER_RECORD == 0 for v in spans)
    assert all(len(msgspec.msgpack.encode(v)) < 1.1 * 1024 * 1024 for v in spans[:-1])
    flat = [value for span in spans for value in span]
    assert flat == [value for item in records for value in item]


def test_a_cut_walks_at_most_max_walk_records() -> None:
    small = [(_ring.POINT, 0, i, 0.5, 1_700_000) for i in range(3_000)]
    big = [(_ring.FLOATS, 0, 5_000 + i * 1024, bytes(8192), 1) for i in range(200)]
    with ring_pair(4 * 1024 * 1024, 0) as (directory, writer, _reader):
        reader = _ring.RingReader(
            directory / _ring.meta_name(WRITER), _ring.span_decoder, _ring.VALUES_PER_RECORD
        )
        try:
            for item in small + big:
                assert writer.append(_ring.ring_record(_ring.encoder.encode(item)))
            first = reader.read(10_000)
            rest = []
            while values := reader.read(10_000):
                rest += values
        finally:
            reader.close()
    assert len(first) == MAX_WALK * _ring.VALUES_PER_RECORD
    assert first + rest == [value for item in small + big for value in item]


def test_a_full_ring_refuses_by_events_and_by_bytes_and_the_refused_record_is_never_read() -> None:
    directory = ring_dir()
    # by events: at most max_events records not committed
    writer = make_writer(directory, 4096, 3, "events")
    reader = open_reader(directory, "events")
    try:
        assert [writer.append(record(make_payload(i, 8))) for i in range(4)] == [
            True,
            True,
            True,
            False,
        ]
        assert reader.read(10) == [make_payload(i, 8) for i in range(3)]
        assert writer.append(record(make_payload(4, 8))) is False  # read, not committed
        reader.commit()  # three committed: room for three more
        assert [writer.append(record(make_payload(i, 8))) for i in range(4, 8)] == [
            True,
            True,
            True,
            False,
        ]
        assert reader.read(10) == [make_payload(i, 8) for i in range(4, 7)]
        assert reader.read(10) == []
        assert writer.written == 6
    finally:
        reader.close()
        writer.close()
    # by bytes: a 64-byte ring of 24-byte records, the last 16 bytes of each lap unused
    writer = make_writer(directory, 64, 1000, "bytes")
    reader = open_reader(directory, "bytes")
    try:
        payloads = [make_payload(i, 22) for i in range(4)]  # 24-byte records
        assert writer.append(record(payloads[0])) is True  # [0, 24)
        assert writer.append(record(payloads[1])) is True  # [24, 48)
        assert writer.append(record(payloads[2])) is False  # would wrap onto [0, 24)
        assert reader.read(1) == [payloads[0], payloads[1]]  # the whole published span
        reader.rewind()
        assert reader.read(1) == [payloads[0], payloads[1]]
        reader.commit()  # [0, 48) is free again
        reader.rewind()
        assert writer.append(record(payloads[2])) is True  # [48, 64) unused, record [64, 88)
        assert writer.append(record(payloads[3])) is True  # [88, 112)
        assert writer.append(record(payloads[0])) is False  # would wrap onto [64, 88)
        assert reader.read(10) == [payloads[2], payloads[3]]  # across the wrap
        reader.commit()
        assert writer.append(record(payloads[0])) is True  # [112, 136)
        assert reader.read(10) == [payloads[0]]
        assert reader.read(10) == []
        with mapped_segment(directory, 0, "bytes") as (slots, _):
            assert slots[_ring.S_PUBLISHED] == _ring.published_word(5, 2, 24)
            assert slots[_ring.S_READ_POS] == 112
            assert (slots[_ring.S_WRAP_POSITION], slots[_ring.S_WRAP_RECORDS]) == (112, 4)
        # a record larger than the data is an error, and leaves the ring as it was
        with pytest.raises(ValueError, match="does not fit"):
            writer.append(record(bytes(64)))
        assert writer.append(record(payloads[1])) is True
        assert reader.read(10) == [payloads[1]]
    finally:
        reader.close()
        writer.close()


def test_the_published_word_wraps_its_record_count_and_lap_fields() -> None:
    """The word holds the record count modulo 2**28 and the lap modulo 256; with the count
    field shrunk to 4 bits, 700 records through a 64-byte ring (350 laps) read back in order."""
    directory = ring_dir()
    with (
        mock.patch.object(ring_layout_module, "COUNT_MASK", 15),
        mock.patch.object(ring_writer_module, "WORD_LIMIT", 15 << _ring.COUNT_SHIFT),
    ):
        writer = make_writer(directory, 64, 10)
        reader = open_reader(directory)
        payloads = [make_payload(i, 22) for i in range(700)]  # 24-byte records
        received: list[bytes] = []
        try:
            for payload in payloads:
                while not writer.append(record(payload)):
                    received.extend(reader.read(100))
                    reader.commit()
            received.extend(reader.read(100))
            assert received == payloads
            assert writer.written == 700
            assert reader.drained() is False  # read, not committed
            reader.commit()
            assert reader.drained() is True
            with mapped_segment(directory) as (slots, _):
                assert slots[_ring.S_PUBLISHED] >> _ring.COUNT_SHIFT == 700 % 16
                assert (slots[_ring.S_PUBLISHED] >> _ring.OFFSET_BITS) & 0xFF == 349 % 256
        finally:
            reader.close()
            writer.close()


@pytest.mark.parametrize("max_events", [10_000, 0], ids=["bounded", "unbounded"])
def test_a_read_stops_at_the_writers_last_checkpoint_within_its_limit(max_events: int) -> None:
    """The writer notes its word every 1024 records: a reader asking for 1,500 records gets
    1,024 (not the 5,000 published), then 1,024 more; a span within the limit comes whole."""
    with ring_pair(None, max_events) as (_directory, writer, reader):
        payloads = [make_payload(i, 10) for i in range(5000)]
        for payload in payloads:
            assert writer.append(record(payload))
        assert reader.read(1500) == payloads[:1024]
        assert reader.read(1500) == payloads[1024:2048]
        assert reader.read(1000) == payloads[2048:]  # no checkpoint in (2048, 3048]: all
        reader.rewind()
        assert reader.read(5000) == payloads


def test_a_checkpoint_is_noted_when_the_slow_path_writes_its_record() -> None:
    """A full ring sends the 4096th record through the slow path (not the record after it):
    its checkpoint is noted all the same, and a read stops there."""
    with ring_pair(None, 4095) as (_directory, writer, reader):
        payloads = [make_payload(i, 10) for i in range(6143)]
        for payload in payloads[:4095]:
            assert writer.append(record(payload))
        assert not writer.append(record(payloads[4095]))  # full at 4095 records
        assert reader.read(2048) == payloads[:2048]
        reader.commit()
        for payload in payloads[4095:]:
            assert writer.append(record(payload))
        assert reader.read(2048) == payloads[2048:4096]  # to checkpoint 4096
        assert reader.read(2048) == payloads[4096:]


def test_an_empty_ring_takes_any_record_that_fits_its_capacity() -> None:
    """Everything committed: a record too long for the rest of the lap wraps to offset 0, even
    when it is longer than the bytes before the committed position (they hold nothing)."""
    with ring_pair(64, 1000) as (_directory, writer, reader):
        assert writer.append(record(make_payload(1, 32)))  # [0, 34)
        assert reader.read(10) == [make_payload(1, 32)]
        reader.commit()
        assert reader.drained() is True
        assert writer.append(record(make_payload(2, 34)))  # 36 bytes: [64, 100)
        assert reader.read(10) == [make_payload(2, 34)]


def test_a_checkpoint_the_writer_has_overwritten_is_not_used() -> None:
    """With a table of two checkpoints, the writer 3 checkpoints ahead has replaced the one a
    reader would stop at: the reader takes the whole published span instead."""
    directory = ring_dir()
    with (
        mock.patch.object(ring_writer_module, "CHECKPOINT_SLOTS", 2),
        mock.patch.object(ring_reader_module, "CHECKPOINT_SLOTS", 2),
    ):
        writer = _ring.RingWriter(directory, WRITER, os.getpid(), 0, 10_000)
        reader = open_reader(directory)
        payloads = [make_payload(i, 10) for i in range(3 * 1024 + 5)]
        try:
            for payload in payloads:
                assert writer.append(record(payload))
            assert reader.read(1100) == payloads  # checkpoint 1024's slot now holds 3072
            for payload in payloads[:2048]:
                assert writer.append(record(payload))
            assert reader.read(1100) == payloads[:1019]  # to checkpoint 4096, still in place
        finally:
            reader.close()
            writer.close()


def test_commit_never_moves_backwards_and_rewind_rereads_what_is_not_committed() -> None:
    with ring_pair(4096, 10) as (directory, writer, reader):
        payloads = [make_payload(i, 5 + i) for i in range(16)]
        cursors = []
        for start, end in ((0, 3), (3, 6), (6, 10)):  # spans of 3, 3 and 4 records
            for payload in payloads[start:end]:
                assert writer.append(record(payload)) is True
            assert reader.read(1) == payloads[start:end]
            cursors.append(reader.cursor.copy())
        at_3, at_6, _ = cursors
        reader.rewind()  # nothing committed yet: everything is read again
        assert reader.cursor.records == 0
        assert reader.read(4) == payloads[:10]
        reader.commit(at_6)
        reader.commit(at_3)  # older: ignored
        assert reader.committed.records == 6
        assert reader.slot(_ring.M_COMMITTED) == 6
        assert writer.committed() == 6
        with mapped_segment(directory) as (slots, _):
            assert slots[_ring.S_READ_POS] == at_6.position
        reader.rewind()
        assert reader.read(100) == payloads[6:10]
        reader.rewind()
        assert reader.read(100) == payloads[6:10]
        # a successor reader starts from the commit too
        successor = open_reader(directory)
        try:
            assert successor.committed.records == 6
            assert successor.read(100) == payloads[6:10]
        finally:
            successor.close()
        # room for exactly 6 more records (10 events, 4 uncommitted)
        assert [writer.append(record(payload)) for payload in payloads[10:16]] == [True] * 6
        assert writer.append(record(b"refused")) is False
        assert reader.read(100) == payloads[10:16]
        reader.commit()
        reader.commit(at_6)  # still ignored
        assert reader.committed.records == 16
        assert reader.drained() is True


def test_unbounded_ring_chains_segments_and_deletes_them_once_committed() -> None:
    with ring_pair(64, 0) as (directory, writer, reader):
        payloads = [make_payload(i, 22) for i in range(10)]  # 24-byte records, 2 per segment
        for payload in payloads:
            assert writer.append(record(payload)) is True
        assert segment_numbers(directory) == [0, 1, 2, 3, 4]
        assert writer.get_slot(_ring.M_WRITE_SEGMENT) == 4
        assert reader.read(3) == payloads[:2]  # one segment's span
        assert reader.read(3) == payloads[2:4]  # then the next one's
        assert reader.drained() is False
        reader.commit()  # in segment 1: segment 0 is deleted
        assert segment_numbers(directory) == [1, 2, 3, 4]
        reader.rewind()
        assert read_all(reader) == payloads[4:]
        reader.commit()
        assert segment_numbers(directory) == [4]
        assert reader.drained() is True
        # the reader made room in segment 4: the writer wraps there instead of chaining
        assert writer.append(record(payloads[0])) is True
        assert writer.append(record(payloads[1])) is True
        assert segment_numbers(directory) == [4]
        assert reader.read(100) == payloads[:2]


def test_a_new_segment_whose_first_word_is_not_published_yet_reads_as_empty() -> None:
    """The writer creates segment n+1 and seals segment n before it publishes the first word
    in n+1: a reader that moves on in between finds a word of 0 there, which means nothing
    yet, not a corrupt ring (a race the two-process test found)."""
    with ring_pair(64, 0) as (directory, writer, reader):
        payloads = [make_payload(i, 22) for i in range(3)]  # 24-byte records, 2 per segment
        for payload in payloads:
            assert writer.append(record(payload))
        with mapped_segment(directory, 1) as (slots, _):
            word = slots[_ring.S_PUBLISHED]
            slots[_ring.S_PUBLISHED] = 0  # as just after the writer created the segment
            assert reader.read(10) == payloads[:2]
            assert reader.read(10) == []
            assert reader.cursor.segment == 1
            reader.commit()
            assert reader.drained() is True
            slots[_ring.S_PUBLISHED] = word  # the writer publishes
            assert reader.drained() is False
            assert reader.read(10) == payloads[2:]


# -- torn records ---------------------------------------------------------------------------------


TORN = make_payload(3, 22)  # a 24-byte record, written by hand at offset 32 of a 64-byte ring


def _torn_setup(directory: Path, lap: int) -> tuple[_ring.RingWriter, list[bytes]]:
    """A 64-byte ring whose writer published two 16-byte records A and B, the next record
    going at offset 32 of lap ``lap``.

    Lap 1: the bytes at offset 32 were never written (zeros). Lap 2: they hold a committed
    record of lap 1 of the same length as TORN."""
    writer = make_writer(directory, 64, 1000)
    if lap == 2:
        reader = open_reader(directory)
        assert writer.append(record(make_payload(100, 14))) is True  # [0, 16)
        assert writer.append(record(make_payload(101, 14))) is True  # [16, 32)
        assert writer.append(record(make_payload(102, 22))) is True  # [32, 56)
        assert len(reader.read(10)) == 3
        reader.commit()
        reader.close()
    published = [make_payload(1, 14), make_payload(2, 14)]  # lap 2: [64, 96)
    for payload in published:
        assert writer.append(record(payload)) is True
    with mapped_segment(directory) as (slots, _):
        assert slots[_ring.S_PUBLISHED] & _ring.OFFSET_MASK == 32
    return writer, published


@pytest.mark.parametrize("lap", [1, 2])
@pytest.mark.parametrize("written", ["nothing", "half", "all"])
def test_a_record_whose_word_is_not_published_is_never_returned(lap: int, written: str) -> None:
    """The writer copies the record, then publishes its word: a writer killed before the
    store leaves a record the reader must not return. Publishing the word (as the writer would
    have) makes it readable."""
    directory = ring_dir()
    writer, published = _torn_setup(directory, lap)
    reader = open_reader(directory)
    torn = record(TORN)
    records = 2 if lap == 1 else 5
    try:
        with mapped_segment(directory) as (slots, data):
            if written == "half":
                data[32 : 32 + 12] = torn[:12]
            if written == "all":
                data[32 : 32 + len(torn)] = torn
            assert reader.read(10) == published
            assert reader.read(10) == []
            reader.rewind()
            assert reader.read(10) == published
            data[32 : 32 + len(torn)] = torn  # complete the copy, then publish
            assert reader.read(10) == []
            slots[_ring.S_PUBLISHED] = _ring.published_word(records + 1, lap - 1, 32 + len(torn))
            assert reader.read(10) == [TORN]
            assert reader.read(10) == []
    finally:
        reader.close()
        writer.close()


@pytest.mark.parametrize(
    "damage", ["zeros", "garbage", "count too high", "count too low", "beyond the lap"]
)
def test_a_published_word_over_bytes_that_are_not_its_records_is_refused(damage: str) -> None:
    """Defence in depth: if the ring were modified by something other than its writer, the
    span does not decode to the records the word announces; the reader raises and consumes
    nothing, rather than returning what it cannot vouch for."""
    directory = ring_dir()
    writer, published = _torn_setup(directory, 1)
    reader = open_reader(directory)
    torn = record(TORN)
    try:
        assert reader.read(10) == published
        with mapped_segment(directory) as (slots, data):
            records, end = 3, 32 + len(torn)
            if damage == "garbage":
                data[32 : 32 + len(torn)] = b"\xc1" * len(torn)  # never valid msgpack
            elif damage != "zeros":
                data[32 : 32 + len(torn)] = torn
            if damage == "count too high":
                records = 4
            elif damage == "count too low":
                end += 10
            word = _ring.published_word(records, 0, end)
            if damage == "beyond the lap":  # lap 1, with no wrap noted in lap 0
                word = _ring.published_word(records, 1, 8)
            slots[_ring.S_PUBLISHED] = word
            for _ in range(2):
                with pytest.raises(MetranaCorruptRingError, match="modified by something other"):
                    reader.read(10)
            assert reader.cursor.records == 2  # nothing consumed
            slots[_ring.S_PUBLISHED] = _ring.published_word(3, 0, 32 + len(torn))
            data[32 : 32 + len(torn)] = torn
            assert reader.read(10) == [TORN]
    finally:
        reader.close()
        writer.close()


def _intent(directory: Path, segment: int, position: int, records: int) -> None:
    """What commit() stores first: the commit it is about to make."""
    with (directory / _ring.meta_name(WRITER)).open("r+b") as file:
        mm = mmap.mmap(file.fileno(), 0)
    meta = memoryview(mm).cast("Q")
    try:
        meta[_ring.M_COMMIT_SEGMENT] = segment
        meta[_ring.M_COMMIT_POSITION] = position
        meta[_ring.M_COMMIT_RECORDS] = records
    finally:
        meta.release()
        mm.close()


@pytest.mark.parametrize("stores_done", [1, 2], ids=["after-intent", "after-read-position"])
def test_a_reader_killed_inside_commit_leaves_the_ring_consistent(stores_done: int) -> None:
    with ring_pair(4096, 4) as (directory, writer, reader):
        payloads = [make_payload(i, 8) for i in range(8)]
        for payload in payloads[:4]:
            assert writer.append(record(payload)) is True
        assert reader.read(10) == payloads[:4]
        # commit() killed after its first store(s): the intent, then the read position
        _intent(directory, reader.cursor.segment, reader.cursor.position, reader.cursor.records)
        if stores_done == 2:
            with mapped_segment(directory) as (slots, _):
                slots[_ring.S_READ_POS] = reader.cursor.position
        reader.close()
        reader = open_reader(directory)
        expected = [] if stores_done == 2 else payloads[:4]  # re-read only if not committed
        assert reader.read(10) == expected
        reader.commit()
        assert reader.committed.records == 4
        assert reader.drained() is True
        assert [writer.append(record(payload)) for payload in payloads[4:]] == [True] * 4
        assert reader.read(10) == payloads[4:]


# -- two processes --------------------------------------------------------------------------------

CHILD = "import sys; sys.path.insert(0, sys.argv[1]); import test_ring; test_ring.child_main()"
CHILD_WRITER = "child"
CAPACITY = 1024  # not a multiple of 24: see payload()


def payload(index: int) -> bytes:
    """Record ``index`` of the two-process tests: 24, 48 or 72 bytes once padded (laps never end
    exactly at the end of a 1024-byte ring), payload lengths not multiples of
    8, the index in the first 8 bytes."""
    length = 24 * (1 + index % 3) - 8 - index % 5
    return (index.to_bytes(8, "little") + bytes(range(index % 64, index % 64 + 64)))[:length]


def child_main() -> None:
    """The writer process: append records 0..count-1, waiting while the ring is full (and
    counting those refusals in M_DROPPED, as the writer's DropNew count is published)."""
    directory, count, max_events = Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    writer = make_writer(directory, int(sys.argv[5]), max_events, CHILD_WRITER)
    append = writer.append
    deadline = time.monotonic() + 60
    refused = 0
    for index in range(count):
        buffer = record(payload(index))
        while not append(buffer):
            refused += 1
            writer.set_slot(_ring.M_DROPPED, refused)
            os.sched_yield()  # let the reader run if it shares this core
            if time.monotonic() > deadline:
                raise SystemExit(f"the ring stayed full at record {index}")
    writer.publish_written()
    writer.close()


def start_child(
    directory: Path, count: int, max_events: int, capacity: int
) -> subprocess.Popen[str]:
    arguments = [str(TESTS_DIR), str(directory), str(count), str(max_events), str(capacity)]
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def check_alive(process: subprocess.Popen[str], deadline: float, waiting_for: str) -> None:
    if time.monotonic() > deadline:
        raise AssertionError(f"timed out waiting for {waiting_for}")
    if process.poll() not in (None, 0):
        assert process.stderr is not None
        raise AssertionError(f"the writer process failed: {process.stderr.read()}")


def wait_for_reader(
    directory: Path, process: subprocess.Popen[str], deadline: float
) -> _ring.RingReader:
    """Open the child's ring as soon as its files are complete (poll with a deadline)."""
    while True:
        try:
            return open_reader(directory, CHILD_WRITER)
        except (FileNotFoundError, MetranaCorruptRingError):
            check_alive(process, deadline, "the writer's ring")
            os.sched_yield()


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("max_events", [50, 0], ids=["bounded", "unbounded"])
def test_a_reader_in_another_process_receives_every_record_once_in_order(max_events: int) -> None:
    """The child appends while the parent reads, commits and sometimes rewinds; positions are
    published with one aligned 8-byte store, so the parent never sees a half-published one."""
    count = 20_000
    expected = [payload(i) for i in range(count)]
    directory = ring_dir()
    rng = random.Random(max_events)
    deadline = time.monotonic() + 60
    process = start_child(directory, count, max_events, CAPACITY)
    reader = None
    try:
        reader = wait_for_reader(directory, process, deadline)
        received: list[bytes] = []
        rewinds = 0
        # Commit nothing until the writer provably had to wait for this reader (bounded: its 50
        # events were refused; from then on it only goes on as this process commits) or chained
        # 20 segments (unbounded: this process follows it from segment to segment).
        holding = True
        while len(received) < count:
            check_alive(process, deadline, f"record {len(received)}")
            if holding:
                holding = not (
                    reader.slot(_ring.M_DROPPED) > 0
                    if max_events
                    else reader.slot(_ring.M_WRITE_SEGMENT) >= 20
                )
            if not holding:
                reader.commit()
            batch = reader.read(rng.randint(1, 64))
            if not batch:
                os.sched_yield()
                continue
            start = len(received)
            assert batch == expected[start : start + len(batch)]
            received.extend(batch)
            if rng.random() < 0.1:  # a failed delivery: re-read everything not committed
                committed = reader.committed.records
                reader.rewind()
                again: list[bytes] = []
                while len(again) < len(received) - committed:  # and what came since, maybe
                    again.extend(reader.read(len(received) - committed))
                assert again == expected[committed : committed + len(again)]
                received.extend(again[len(received) - committed :])
                rewinds += 1
        assert process.wait(timeout=max(deadline - time.monotonic(), 1)) == 0
        assert received == expected
        assert reader.read(100) == []
        reader.commit()
        assert reader.drained() is True
        assert reader.slot(_ring.M_WRITTEN) == count
        assert reader.slot(_ring.M_COMMITTED) == count
        assert reader.pending() == 0
        assert rewinds > 0
        if max_events:
            assert reader.slot(_ring.M_DROPPED) > 0
        else:
            last = reader.slot(_ring.M_WRITE_SEGMENT)
            assert last >= 20
            assert segment_numbers(directory, CHILD_WRITER) == [last]
    finally:
        kill_tree(process.pid)
        process.wait(timeout=10)
        assert process.stderr is not None
        process.stderr.close()
        if reader is not None:
            reader.close()


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("max_events", "capacity"), [(50, CAPACITY), (0, 64 * 1024)], ids=["bounded", "unbounded"]
)
def test_a_writer_killed_mid_append_leaves_only_whole_records(
    max_events: int, capacity: int
) -> None:
    """SIGKILL the writer while it appends as fast as it can: what the reader then drains is
    exactly records 0..n-1 for some n, none torn, none twice."""
    directory = ring_dir()
    deadline = time.monotonic() + 60
    process = start_child(directory, 10**9, max_events, capacity)
    reader = None
    try:
        reader = wait_for_reader(directory, process, deadline)
        received: list[bytes] = []
        while len(received) < 3000:
            check_alive(process, deadline, f"record {len(received)}")
            batch = reader.read(64)
            if not batch:
                os.sched_yield()
                continue
            start = len(received)
            assert batch == [payload(i) for i in range(start, start + len(batch))]
            received.extend(batch)
            reader.commit()
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
        while batch := reader.read(1000):
            start = len(received)
            assert batch == [payload(i) for i in range(start, start + len(batch))]
            received.extend(batch)
            reader.commit()
        assert len(received) >= 3000
        assert reader.drained() is True
        assert reader.committed.records == len(received)
        if max_events:
            assert len(received) <= 3000 + 64 + max_events
    finally:
        kill_tree(process.pid)
        process.wait(timeout=10)
        assert process.stderr is not None
        process.stderr.close()
        if reader is not None:
            reader.close()
