"""File helpers every part uses: replace a file atomically, read a JSON struct that may not be
there yet, and wait for a condition without a fixed sleep."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec

__all__: list[str] = []  # internal: ``wait_until`` is public through ``metrana.testing``

T = TypeVar("T")


def atomic_write(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file, never a
    part of one. With ``durable``, the data is fsync'd before the rename (a power loss keeps
    one of the two)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_struct(path: Path, kind: type[T]) -> T | None:
    """The JSON document at ``path`` decoded as ``kind``; None when the file is missing or does
    not hold one (a reader never sees a torn file, see :func:`atomic_write`)."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=kind)
    except (FileNotFoundError, msgspec.DecodeError):
        return None


def write_struct(path: Path, value: Any) -> None:
    """``value`` as JSON at ``path``, atomically."""
    atomic_write(path, msgspec.json.encode(value))


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    *,
    message: str | Callable[[], str] = "condition",
    interval: float = 0.001,
    max_interval: float = 0.05,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Any] = time.sleep,
) -> T:
    """Poll ``predicate`` until it returns something true and return that; raise
    ``TimeoutError`` naming ``message`` after ``timeout`` seconds. The pause between polls
    starts at ``interval`` and doubles up to ``max_interval``, so a condition that holds soon
    costs a millisecond and one that takes long costs few polls."""
    deadline = clock() + timeout
    delay = interval
    while True:
        result = predicate()
        if result:
            return result
        if clock() >= deadline:
            what = message() if callable(message) else message
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        sleep(delay)
        delay = min(delay * 2, max_interval)
