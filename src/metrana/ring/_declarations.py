"""A writer's series declarations, kept outside the ring too (see ``_layout``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DeclarationLog",
    "read_declarations",
]


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
