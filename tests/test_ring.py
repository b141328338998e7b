"""The ring (``metrana._ring``): property tests against a model of its documented format, torn
records, commit and rewind, and a writer and a reader in two processes.

Small rings are made by patching ``_ring.segment_capacity`` while the writer is created: the
capacity is stored in the meta file, so the reader uses it too. Every ring lives in a fresh
directory under the test's session root (``conftest.isolated`` removes it).
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
from typing import NamedTuple
from unittest import mock

import pytest
from conftest import kill_tree
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from metrana import _ring
from metrana._errors import MetranaCorruptRingError

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
    with mock.patch.object(_ring, "segment_capacity", lambda _max_events: capacity):
        return _ring.RingWriter(directory, writer_id, os.getpid(), 0, max_events)


def open_reader(directory: Path, writer_id: str = WRITER) -> _ring.RingReader:
    return _ring.RingReader(directory / _ring.meta_name(writer_id), bytes)


def record(payload: bytes) -> bytearray:
    """What ``RingWriter.append`` takes: 8 bytes of scratch for the header, then the payload."""
    return bytearray(8) + payload


def record_size(payload_length: int) -> int:
    return (_ring.RECORD_HEADER + payload_length + 7) & -8


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
) -> Iterator[tuple[memoryview, memoryview, memoryview]]:
    """A segment file mapped a second time: (header slots, data bytes, data u64 words)."""
    path = directory / _ring.segment_name(writer_id, number)
    with path.open("r+b") as file:
        mm = mmap.mmap(file.fileno(), 0)
    slots = memoryview(mm).cast("Q")
    data = memoryview(mm)[_ring.SEGMENT_HEADER :]
    words = data.cast("Q")
    try:
        yield slots, data, words
    finally:
        words.release()
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
    """The ring as documented: records padded to 8 bytes after an 8-byte header, never
    straddling the end of the data (pad and wrap); at most ``max events`` records not committed;
    the writer never overwrites bytes after the committed read position; with ``max events = 0``
    a segment with no room is sealed and the writer continues at position 0 of the next one."""

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
        out = self.records[records : records + limit]
        if out:
            _, segment, position = out[-1]
        if self.sealed_end.get(segment) == position:
            segment, position = segment + 1, 0
        self.cursor = At(records + len(out), segment, position)
        return [payload for payload, _, _ in out]

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
        assert reader.read(len(model.records) + 1) == model.read(len(model.records) + 1)
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
    at offset 0, so no record ever ends exactly at the end of the data.
    Payload lengths still vary within a record size (padding to 8 bytes)."""
    capacity = draw(st.sampled_from((40, 64, 112, 136, 256)))
    max_events = draw(st.sampled_from(MAX_EVENTS))
    lengths = st.builds(
        lambda k, d: 24 * k - 8 - d, st.integers(1, capacity // 24), st.integers(0, 7)
    )
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
    """Real segment sizes: fill the first lap exactly, free one record, append again."""
    directory = ring_dir()
    writer = _ring.RingWriter(directory, WRITER, os.getpid(), 0, max_events)
    reader = open_reader(directory)
    try:
        length = 4096 - _ring.RECORD_HEADER
        records = writer.capacity // 4096  # exactly one lap
        assert writer.capacity % 4096 == 0
        for serial in range(records):
            assert writer.append(record(make_payload(serial, length)))
        assert reader.read(1) == [make_payload(0, length)]
        reader.commit()
        assert writer.append(record(make_payload(records, 16)))  # fits at offset 0 of lap 2
        assert reader.read(records) == [
            *(make_payload(serial, length) for serial in range(1, records)),
            make_payload(records, 16),
        ]
    finally:
        reader.close()
        writer.close()


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
        reader.rewind()
        assert reader.read(1) == [make_payload(0, 8)]
        reader.commit()  # one committed: room for one more
        assert writer.append(record(make_payload(4, 8))) is True
        assert writer.append(record(make_payload(5, 8))) is False
        assert reader.read(10) == [make_payload(1, 8), make_payload(2, 8), make_payload(4, 8)]
        assert reader.read(10) == []
        assert writer.written == 4
    finally:
        reader.close()
        writer.close()
    # by bytes: a 64-byte ring of 24-byte records, with a pad at the end of each lap
    writer = make_writer(directory, 64, 1000, "bytes")
    reader = open_reader(directory, "bytes")
    try:
        payloads = [make_payload(i, 16) for i in range(4)]  # 24-byte records
        assert writer.append(record(payloads[0])) is True  # [0, 24)
        assert writer.append(record(payloads[1])) is True  # [24, 48)
        assert writer.append(record(payloads[2])) is False  # needs a 16-byte pad + 24 bytes
        assert reader.read(1) == [payloads[0]]
        reader.commit()  # [0, 24) is free again
        assert writer.append(record(payloads[2])) is True  # pad [48, 64), record [64, 88)
        assert writer.append(record(payloads[3])) is False  # [88, 112) would overwrite [48, 64)
        assert reader.read(10) == [payloads[1], payloads[2]]
        reader.commit()
        assert writer.append(record(payloads[3])) is True
        assert reader.read(10) == [payloads[3]]
        assert reader.read(10) == []
        with mapped_segment(directory, 0, "bytes") as (slots, _, words):
            assert slots[_ring.S_WRITE_POS] == 112
            assert slots[_ring.S_READ_POS] == 88
            assert words[48 >> 3] == _ring.header(_ring.PAD, 48, 64)
        # a record larger than the data is an error, and leaves the ring as it was
        with pytest.raises(ValueError, match="does not fit"):
            writer.append(record(bytes(64)))
        assert writer.append(record(payloads[0])) is True
        assert reader.read(10) == [payloads[0]]
    finally:
        reader.close()
        writer.close()


def test_commit_never_moves_backwards_and_rewind_rereads_what_is_not_committed() -> None:
    directory = ring_dir()
    writer = make_writer(directory, 4096, 10)
    reader = open_reader(directory)
    payloads = [make_payload(i, 5 + i) for i in range(16)]
    try:
        for payload in payloads[:10]:
            assert writer.append(record(payload)) is True
        assert reader.read(3) == payloads[:3]
        at_3 = reader.cursor.copy()
        assert reader.read(3) == payloads[3:6]
        at_6 = reader.cursor.copy()
        assert reader.read(2) == payloads[6:8]
        reader.rewind()  # nothing committed yet: everything is read again
        assert reader.cursor.records == 0
        assert reader.read(4) == payloads[:4]
        reader.commit(at_6)
        reader.commit(at_3)  # older: ignored
        assert reader.committed.records == 6
        assert reader.slot(_ring.M_COMMITTED) == 6
        assert writer.committed() == 6
        with mapped_segment(directory) as (slots, _, _):
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
    finally:
        reader.close()
        writer.close()


def test_unbounded_ring_chains_segments_and_deletes_them_once_committed() -> None:
    directory = ring_dir()
    writer = make_writer(directory, 64, 0)
    reader = open_reader(directory)
    payloads = [make_payload(i, 16) for i in range(10)]  # 24-byte records, 2 per segment
    try:
        for payload in payloads:
            assert writer.append(record(payload)) is True
        assert segment_numbers(directory) == [0, 1, 2, 3, 4]
        assert writer.get_slot(_ring.M_WRITE_SEGMENT) == 4
        assert reader.read(3) == payloads[:3]
        assert reader.drained() is False
        reader.commit()  # in segment 1: segment 0 is deleted
        assert segment_numbers(directory) == [1, 2, 3, 4]
        reader.rewind()
        assert reader.read(100) == payloads[3:]
        reader.commit()
        assert segment_numbers(directory) == [4]
        assert reader.drained() is True
        # the reader made room in segment 4: the writer wraps there instead of chaining
        assert writer.append(record(payloads[0])) is True
        assert writer.append(record(payloads[1])) is True
        assert segment_numbers(directory) == [4]
        assert reader.read(100) == payloads[:2]
    finally:
        reader.close()
        writer.close()


# -- torn records ---------------------------------------------------------------------------------


TORN = make_payload(3, 16)  # a 24-byte record, written by hand at offset 32 of a 64-byte ring


def _torn_setup(directory: Path, lap: int) -> tuple[_ring.RingWriter, list[bytes]]:
    """A 64-byte ring whose writer published two 16-byte records A and B, the next record
    going at offset 32.

    Lap 1: the bytes at offset 32 were never written (zeros). Lap 2: they hold a committed
    record of lap 1 of the same length as TORN, whose header is well formed."""
    writer = make_writer(directory, 64, 1000)
    if lap == 2:
        reader = open_reader(directory)
        assert writer.append(record(make_payload(100, 8))) is True  # [0, 16)
        assert writer.append(record(make_payload(101, 8))) is True  # [16, 32)
        assert writer.append(record(make_payload(102, 16))) is True  # [32, 56)
        assert len(reader.read(10)) == 3
        reader.commit()
        reader.close()
    published = [make_payload(1, 8), make_payload(2, 8)]  # lap 2: pad [56, 64), then [64, 96)
    for payload in published:
        assert writer.append(record(payload)) is True
    with mapped_segment(directory) as (slots, _, _):
        assert slots[_ring.S_WRITE_POS] % 64 == 32
    return writer, published


@pytest.mark.parametrize("lap", [1, 2])
@pytest.mark.parametrize("written", ["nothing", "payload", "half payload and header", "all"])
def test_a_record_whose_position_is_not_published_is_never_returned(lap: int, written: str) -> None:
    """The writer stores payload, then header, then the write position: a writer killed before
    the last store leaves a record the reader must not return. Finishing the stores (as the
    writer would have) makes it readable."""
    directory = ring_dir()
    writer, published = _torn_setup(directory, lap)
    reader = open_reader(directory)
    torn = TORN
    try:
        with mapped_segment(directory) as (slots, data, words):
            position = slots[_ring.S_WRITE_POS]
            offset = position % 64
            header = _ring.header(len(torn), position, 64)
            start = offset + _ring.RECORD_HEADER
            if written in ("payload", "all"):
                data[start : start + len(torn)] = torn
            if written == "half payload and header":
                data[start : start + 4] = torn[:4]
            if written in ("half payload and header", "all"):
                words[offset >> 3] = header
            assert reader.read(10) == published
            assert reader.read(10) == []
            reader.rewind()
            assert reader.read(10) == published
            # complete the record the way the writer does: payload, header, then position
            data[start : start + len(torn)] = torn
            words[offset >> 3] = header
            assert reader.read(10) == []
            slots[_ring.S_WRITE_POS] = position + record_size(len(torn))
            assert reader.read(10) == [torn]
            assert reader.read(10) == []
    finally:
        reader.close()
        writer.close()


@pytest.mark.parametrize("lap", [1, 2])
def test_a_published_position_over_a_missing_or_stale_header_is_refused(lap: int) -> None:
    """Defence in depth: if the position were published before the header, the check word (a
    function of the record's lap) tells the reader the header is not this lap's: it
    raises instead of returning zeros (lap 1) or an older lap's record (lap 2)."""
    directory = ring_dir()
    writer, published = _torn_setup(directory, lap)
    reader = open_reader(directory)
    torn = TORN
    try:
        assert reader.read(10) == published
        records = 2 if lap == 1 else 5  # lap 2: after the 3 records of lap 1
        assert reader.cursor.records == records
        with mapped_segment(directory) as (slots, data, words):
            position = slots[_ring.S_WRITE_POS]
            offset = position % 64
            stale = words[offset >> 3]
            if lap == 1:
                assert stale == 0
            else:  # a well-formed header of lap 1, same length as the torn record
                assert stale == _ring.header(len(torn), position - 64, 64)
            start = offset + _ring.RECORD_HEADER
            data[start : start + len(torn)] = torn
            slots[_ring.S_WRITE_POS] = position + record_size(len(torn))
            with pytest.raises(MetranaCorruptRingError, match="bad check word"):
                reader.read(10)
            with pytest.raises(MetranaCorruptRingError, match="bad check word"):
                reader.read(10)
            assert reader.cursor.records == records  # nothing consumed
            words[offset >> 3] = _ring.header(len(torn), position, 64)
            assert reader.read(10) == [torn]
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
    directory = ring_dir()
    writer = make_writer(directory, 4096, 4)
    reader = open_reader(directory)
    payloads = [make_payload(i, 8) for i in range(8)]
    try:
        for payload in payloads[:4]:
            assert writer.append(record(payload)) is True
        assert reader.read(10) == payloads[:4]
        # commit() killed after its first store(s): the intent, then the read position
        _intent(directory, reader.cursor.segment, reader.cursor.position, reader.cursor.records)
        if stores_done == 2:
            with mapped_segment(directory) as (slots, _, _):
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
    finally:
        reader.close()
        writer.close()


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
                assert reader.read(len(received) - committed) == expected[committed : len(received)]
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
