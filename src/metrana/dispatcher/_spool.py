"""The disk spool: batches the target could not take, kept on disk until it can (level A1).

One spool per session under ``METRANA_HOME/spool/<session key>/``::

    run.json          the session's configuration (without its API key), for ``metrana sync``
    spool.lock        held by whoever writes or replays the spool (dispatcher or sync)
    cursor.json       how far replay got: (file number, byte offset), replaced atomically
    NNNNNNNN.spool    append-only records: u32 length, u32 crc32, msgpack batch

A record is ``[batch id, [[metric, scale, labels json, steps, values, timestamps], ...]]``.
Every append is flushed and fsync'd before the ring positions it covers are committed. A
record is replayed with producer id ``spool-<key>`` and sequence = batch id, so replaying a
record twice (a crash mid-replay, or ``metrana sync`` run twice) stores nothing twice.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import filelock
import msgspec

from .._config import Config, spool_max_bytes
from .._errors import MetranaError
from .._identity import SeriesColumns, SeriesKey

FILE_BYTES = 64 * 1024 * 1024

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


class SpoolFullError(MetranaError):
    """The spool reached its size cap (``METRANA_SPOOL_MAX_BYTES``)."""


class SpoolCursor(msgspec.Struct):
    file: int = 0
    offset: int = 0


class SpooledBatch(msgspec.Struct):
    batch_id: int
    series: dict[SeriesKey, SeriesColumns]
    file: int
    end_offset: int

    @property
    def points(self) -> int:
        return sum(len(c.steps) for c in self.series.values())


def spool_root(home: str | Path) -> Path:
    return Path(home) / "spool"


class Spool:
    """A session's spool. Not thread-safe: one owner at a time (held by ``spool.lock``)."""

    def __init__(self, directory: Path, max_bytes: int | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.key = directory.name
        self.max_bytes = spool_max_bytes() if max_bytes is None else max_bytes
        self._lock = filelock.FileLock(str(directory / "spool.lock"))
        pending = [b.batch_id for b in self.pending()]
        self._next_id = 1 + max(pending, default=0)
        # (producer, batch id) is what the server deduplicates a replayed batch by. Batch ids
        # start again at 1 in an empty spool, so every epoch of a spool (from empty to empty)
        # gets a producer id of its own; the pending batches of an epoch keep theirs.
        producer_path = self.dir / "producer"
        if pending and producer_path.exists():
            self.producer_id = producer_path.read_text().strip()
        else:
            self.producer_id = self._new_producer()

    # -- ownership ------------------------------------------------------------------------------

    def acquire(self, timeout: float = -1) -> None:
        self._lock.acquire(timeout=timeout)

    def release(self) -> None:
        self._lock.release()

    def write_run(self, config: Config) -> None:
        data = msgspec.json.encode(msgspec.structs.replace(config, api_key=None))
        tmp = self.dir / ".run.json.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.dir / "run.json")

    def forget_run(self) -> None:
        """Remove the run description (the spool is delivered and can go)."""
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "run.json").unlink()

    def read_run(self) -> Config:
        return msgspec.json.decode((self.dir / "run.json").read_bytes(), type=Config)

    # -- writing --------------------------------------------------------------------------------

    def _files(self) -> list[int]:
        return sorted(int(p.stem) for p in self.dir.glob("*.spool"))

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.dir.glob("*.spool"))

    def append(self, batch: Mapping[SeriesKey, SeriesColumns]) -> int:
        """Append a batch durably (fsync); return its id. Raises SpoolFullError at the cap."""
        payload = _encoder.encode(
            [
                self._next_id,
                [
                    [name, scale, labels, c.steps, c.values, c.timestamps]
                    for (name, scale, labels), c in batch.items()
                ],
            ]
        )
        record = len(payload).to_bytes(4, "little") + zlib.crc32(payload).to_bytes(4, "little")
        record += payload
        if self.size() + len(record) > self.max_bytes:
            raise SpoolFullError(
                f"the spool {self.dir} is full ({self.max_bytes} bytes, METRANA_SPOOL_MAX_BYTES);"
                " data stays in the rings until the target answers or the cap is raised"
            )
        files = self._files()
        if not files:
            # A new epoch: a cursor left by a dispatcher killed while clearing the last one
            # would skip its first batches.
            with contextlib.suppress(FileNotFoundError):
                (self.dir / "cursor.json").unlink()
        number = files[-1] if files else 0
        path = self.dir / f"{number:08d}.spool"
        if path.exists() and path.stat().st_size + len(record) > FILE_BYTES:
            number += 1
            path = self.dir / f"{number:08d}.spool"
        with open(path, "ab") as handle:
            handle.write(record)
            handle.flush()
            os.fsync(handle.fileno())
        batch_id = self._next_id
        self._next_id += 1
        return batch_id

    # -- replay -----------------------------------------------------------------------------------

    def cursor(self) -> SpoolCursor:
        try:
            return msgspec.json.decode((self.dir / "cursor.json").read_bytes(), type=SpoolCursor)
        except (FileNotFoundError, msgspec.DecodeError):
            return SpoolCursor()

    def pending(self) -> Iterator[SpooledBatch]:
        """Every batch not yet acknowledged, oldest first."""
        cursor = self.cursor()
        for number in self._files():
            if number < cursor.file:
                continue
            data = (self.dir / f"{number:08d}.spool").read_bytes()
            offset = cursor.offset if number == cursor.file else 0
            while offset + 8 <= len(data):
                length = int.from_bytes(data[offset : offset + 4], "little")
                checksum = int.from_bytes(data[offset + 4 : offset + 8], "little")
                payload = data[offset + 8 : offset + 8 + length]
                if len(payload) < length or zlib.crc32(payload) != checksum:
                    break  # a torn tail from a crash mid-append: never acknowledged
                offset += 8 + length
                batch_id, items = _decoder.decode(payload)
                series = {
                    (name, scale, labels): SeriesColumns(list(steps), list(values), list(stamps))
                    for name, scale, labels, steps, values, stamps in items
                }
                yield SpooledBatch(batch_id, series, number, offset)

    def acknowledge(self, batch: SpooledBatch) -> None:
        """Record that ``batch`` (and everything before it) reached the target."""
        tmp = self.dir / ".cursor.json.tmp"
        tmp.write_bytes(msgspec.json.encode(SpoolCursor(batch.file, batch.end_offset)))
        os.replace(tmp, self.dir / "cursor.json")
        for number in self._files():
            if number < batch.file:
                (self.dir / f"{number:08d}.spool").unlink()

    def empty(self) -> bool:
        return next(iter(self.pending()), None) is None

    def clear_if_empty(self) -> bool:
        """Remove the spool's files once everything was replayed (a new epoch begins)."""
        if not self.empty():
            return False
        # The cursor first: killed after it, the batches would be replayed again under the
        # same producer id (and absorbed); killed after the files, a stale cursor would skip
        # the next epoch's batches.
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "cursor.json").unlink()
        for path in self.dir.glob("*.spool"):
            path.unlink()
        self.producer_id = self._new_producer()
        return True

    def _new_producer(self) -> str:
        producer = f"spool-{self.key}-{uuid.uuid4().hex[:12]}"
        tmp = self.dir / ".producer.tmp"
        tmp.write_text(producer)
        os.replace(tmp, self.dir / "producer")
        return producer
