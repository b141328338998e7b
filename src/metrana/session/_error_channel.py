"""The session's error channel: the dispatcher publishes delivery errors, every writer process
reads them and acts on its error strategy (warn once, stay silent, raise on log or on close).

It is the file ``errors.json`` in the session directory, replaced atomically. It holds at most
``METRANA_ERROR_QUEUE_MAX_SIZE`` distinct errors (a repeat bumps a count); older ones are
dropped and counted in ``overflow``. Publishing never blocks on a reader.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec

from .._files import read_struct, write_struct

__all__ = [
    "DeliveryErrorEntry",
    "ErrorChannelState",
    "ErrorPublisher",
    "ErrorWatcher",
    "errors_path",
    "read_errors",
]


class DeliveryErrorEntry(msgspec.Struct):
    id: int
    kind: str  # "rejected", "unreachable", "storage", "refused"
    message: str
    count: int
    first_ns: int
    last_ns: int


class ErrorChannelState(msgspec.Struct):
    errors: list[DeliveryErrorEntry] = []
    overflow: int = 0
    next_id: int = 1


def errors_path(session_dir: Path) -> Path:
    return session_dir / "errors.json"


class ErrorPublisher:
    """The dispatcher's side."""

    def __init__(self, session_dir: Path, max_size: int) -> None:
        self.path = errors_path(session_dir)
        self.max_size = max_size
        self.state = read_errors(self.path) or ErrorChannelState()

    def publish(self, kind: str, message: str) -> None:
        now = time.time_ns()
        for entry in self.state.errors:
            if entry.kind == kind and entry.message == message:
                entry.count += 1
                entry.last_ns = now
                break
        else:
            self.state.errors.append(
                DeliveryErrorEntry(self.state.next_id, kind, message, 1, now, now)
            )
            self.state.next_id += 1
            while len(self.state.errors) > self.max_size:
                self.state.errors.pop(0)
                self.state.overflow += 1
        write_struct(self.path, self.state)


def read_errors(path: Path) -> ErrorChannelState | None:
    """The channel as last published, or None when nothing was published."""
    return read_struct(path, ErrorChannelState)


class ErrorWatcher:
    """A writer's side: yields each error once, by id, as the file changes."""

    def __init__(self, session_dir: Path) -> None:
        self.path = errors_path(session_dir)
        self.seen = 0
        self._mtime = 0
        state = read_errors(self.path)
        if state is not None:  # errors from before this writer joined are not its own
            self.seen = state.next_id - 1

    def new_errors(self) -> list[DeliveryErrorEntry]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        if mtime == self._mtime:
            return []
        self._mtime = mtime
        state = read_errors(self.path)
        if state is None:
            return []
        fresh = [entry for entry in state.errors if entry.id > self.seen]
        if fresh:
            self.seen = max(entry.id for entry in fresh)
        return fresh

    def counts(self) -> dict[int, int]:
        """How often each error on the channel happened so far, by id (a repeat of an error
        bumps its count without making it new)."""
        state = read_errors(self.path)
        return {} if state is None else {entry.id: entry.count for entry in state.errors}
