"""Nothing accumulates in the session root: directories nobody uses are removed, and rings that
every process of a job left behind are delivered by a dispatcher started for them."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec

from .. import ring as _ring
from .._errors import MetranaDispatcherError
from .._files import read_struct
from ._election import ensure_dispatcher
from ._process import process_alive
from ._session import DispatcherInfo, Session, session_root

__all__ = [
    "STALE_SESSION_SECONDS",
    "live_dispatchers",
    "reap_sessions",
    "recover_orphans",
    "remove_if_unused",
]

STALE_SESSION_SECONDS = 3600.0


def live_dispatchers(root: Path) -> list[int]:
    """Pids of the live dispatchers of the sessions under ``root`` (by pid and create time, so
    a reused pid is not mistaken for one)."""
    pids = []
    for info_path in root.glob("*/dispatcher.json"):
        info = read_struct(info_path, DispatcherInfo)
        if info is not None and process_alive(info.pid, info.create_ms):
            pids.append(info.pid)
    return pids


def reap_sessions(root: Path | None = None, older_than: float = STALE_SESSION_SECONDS) -> int:
    """Remove session directories nobody uses: no ring left, no live dispatcher, untouched for
    ``older_than`` seconds. A session that still holds rings (undelivered data) is never
    removed. Returns how many were removed."""
    base = session_root() if root is None else root
    removed = 0
    try:
        candidates = list(base.iterdir())
    except OSError:
        return 0
    now = time.time()
    for directory in candidates:
        try:
            if not directory.is_dir() or now - directory.stat().st_mtime < older_than:
                continue
        except OSError:
            continue
        removed += remove_if_unused(directory)
    return removed


def remove_if_unused(directory: Path) -> bool:
    """Remove a session directory that holds no ring and has no live dispatcher (its run is
    over and delivered); whether it was removed."""
    try:
        if any(directory.glob("w-*")) or Session(directory).dispatcher_alive():
            return False
        for path in directory.iterdir():
            path.unlink()
        directory.rmdir()
    except OSError:
        return False
    return True


def recover_orphans(root: Path | None = None, timeout: float = 10.0) -> list[Session]:
    """Start a dispatcher for every session whose rings hold data but whose processes are all
    gone (the dispatcher died after the last writer): it delivers the rings, then exits.
    Answer the sessions taken care of."""
    base = session_root() if root is None else root
    recovered = []
    try:
        candidates = [d for d in base.iterdir() if d.is_dir()]
    except OSError:
        return []
    for directory in candidates:
        session = Session(directory)
        try:
            metas = session.ring_metas()
            if not metas or not session.config_path.exists() or session.dispatcher_alive():
                continue
            if any(_writer_alive(meta) for meta in metas):
                continue  # a live writer's watchdog restarts the dispatcher itself
            ensure_dispatcher(session, session.read_config(), timeout)
        except (OSError, MetranaDispatcherError, msgspec.DecodeError):
            continue
        recovered.append(session)
    return recovered


def _writer_alive(meta_path: Path) -> bool:
    try:
        pid, create_ms = _ring.writer_process_of(meta_path)
    except ValueError:
        return True  # not a writer's ring: not ours to take
    return process_alive(pid, create_ms)
