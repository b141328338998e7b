"""The mapped files of a ring: segments and the meta file (see ``_layout`` for the format)."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

from .._errors import MetranaCorruptRingError
from ._layout import (
    M_MAGIC,
    MAGIC_META,
    MAGIC_SEGMENT,
    META_BYTES,
    S_CAPACITY,
    S_MAGIC,
    S_NUMBER,
    SEGMENT_HEADER,
)

__all__ = [
    "Segment",
    "map_file",
    "read_meta",
]


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


def map_file(path: Path, size: int, create: bool) -> tuple[mmap.mmap, memoryview]:
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


class Segment:
    __slots__ = ("capacity", "mm", "number", "path", "slots", "view")

    def __init__(self, path: Path, number: int, capacity: int, create: bool) -> None:
        self.path = path
        self.number = number
        self.mm, self.slots = map_file(path, SEGMENT_HEADER + capacity, create)
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
