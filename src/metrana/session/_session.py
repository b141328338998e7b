"""Sessions: one run on one host, shared by every writer process of a job and one dispatcher.

A session directory (under ``/dev/shm`` where it exists, else the temp dir; mode 0700) holds::

    config.json       the resolved configuration of the writer that started the dispatcher
    dispatcher.lock   held (flock) by the live dispatcher for its whole life: the election
    spawn.lock        serialises writers deciding whether to start a dispatcher
    dispatcher.json   pid and create time of the dispatcher holding the lock
    handshake.json    the dispatcher's answer: ready (experiment id, resume table) or failed
    handshake.previous.json  the answer of the dispatcher this one replaced
    resume.json       the last step the dispatcher read per series, for processes joining later
    errors.json       the error channel (``_error_channel``)
    stats.json        the dispatcher's counters (``_stats``)
    dispatcher.log    the dispatcher's log lines
    w-<id>.*          one ring per writer process (``metrana.ring``)
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from .. import ring as _ring
from .._config import Config, session_root_override
from .._files import read_struct, write_struct
from ._process import process_alive

# filelock costs ~10 ms to import: every training process pays `import metrana`, so it loads
# when first needed.
if TYPE_CHECKING:
    import filelock

__all__ = [
    "DispatcherInfo",
    "Handshake",
    "ResumeTable",
    "Session",
    "session_root",
]

# (metric, scale, canonical labels, last step) per series
ResumeTable = list[tuple[str, str, str, int]]


class Handshake(msgspec.Struct):
    """The dispatcher's answer to the run handshake, read by every writer at ``init()``."""

    status: str  # "ready" or "failed"
    dispatcher_pid: int
    experiment_id: int | None = None
    error: str | None = None
    error_kind: str | None = None  # "run_exists", "config", "internal"
    resume: ResumeTable = []


class DispatcherInfo(msgspec.Struct):
    pid: int
    create_ms: int
    started_ns: int


def session_root() -> Path:
    """Where session directories live: ``METRANA_SESSION_ROOT``, else ``/dev/shm``, else tmp."""
    override = session_root_override()
    if override is not None:
        return override
    base = Path("/dev/shm")
    if not (base.is_dir() and os.access(base, os.W_OK)):
        import tempfile

        base = Path(tempfile.gettempdir())
    return base / f"metrana-{os.getuid()}"


def _finished_not_removed(meta_path: Path) -> bool:
    """A ring whose writer closed or died, not yet removed by the dispatcher (which removes it
    once every record is committed, after publishing the steps it read in resume.json)."""
    meta = _ring.read_meta(meta_path)
    if meta is None:
        return False
    closed = meta[_ring.M_STATE] == _ring.STATE_CLOSED
    return closed or not process_alive(int(meta[_ring.M_PID]), int(meta[_ring.M_CREATE_MS]))


class Session:
    """A session directory and its control files, which writers and the dispatcher share."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.config_path = directory / "config.json"
        self.lock_path = directory / "dispatcher.lock"
        self.spawn_lock_path = directory / "spawn.lock"
        self.info_path = directory / "dispatcher.json"
        self.handshake_path = directory / "handshake.json"
        self.previous_handshake_path = directory / "handshake.previous.json"
        self.resume_path = directory / "resume.json"
        self.log_path = directory / "dispatcher.log"

    @staticmethod
    def key(config: Config) -> str:
        """Derived from the target, the run identity, the job's orchestration id and the host
        (``METRANA_HOST_ID``): one session, and one dispatcher, per run and host."""
        run = config.run
        parts = [
            config.target,
            run.workspace_name,
            run.project_name,
            run.experiment_name or "",
            run.run_name,
            config.orchestration_id,
            config.host_id,
        ]
        return hashlib.sha256(msgspec.json.encode(parts)).hexdigest()[:24]

    @classmethod
    def for_config(cls, config: Config) -> Session:
        root = session_root()
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory = root / cls.key(config)
        directory.mkdir(mode=0o700, exist_ok=True)
        return cls(directory)

    # -- control files ----------------------------------------------------------------------

    def write_config(self, config: Config) -> None:
        write_struct(self.config_path, config)

    def read_config(self) -> Config:
        return msgspec.json.decode(self.config_path.read_bytes(), type=Config)

    def write_handshake(self, handshake: Handshake) -> None:
        write_struct(self.handshake_path, handshake)

    def read_handshake(self) -> Handshake | None:
        return read_struct(self.handshake_path, Handshake)

    def read_previous_handshake(self) -> Handshake | None:
        """The handshake of the dispatcher this one replaced, if it had opened the run."""
        result = read_struct(self.previous_handshake_path, Handshake)
        return result if result is not None and result.status == "ready" else None

    def write_info(self, info: DispatcherInfo) -> None:
        write_struct(self.info_path, info)

    def read_info(self) -> DispatcherInfo | None:
        return read_struct(self.info_path, DispatcherInfo)

    def write_resume(self, table: ResumeTable) -> None:
        """The dispatcher's table of the last step it has read per series (for joiners)."""
        write_struct(self.resume_path, table)

    def read_resume(self) -> ResumeTable:
        return read_struct(self.resume_path, ResumeTable) or []

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty)"

    # -- the dispatcher's lock --------------------------------------------------------------

    def dispatcher_lock(self) -> filelock.BaseFileLock:
        import filelock

        return filelock.FileLock(str(self.lock_path))

    def dispatcher_alive(self) -> bool:
        """True when some process holds the dispatcher lock."""
        import filelock

        lock = self.dispatcher_lock()
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            return True
        lock.release()
        return False

    # -- rings ------------------------------------------------------------------------------

    def ring_metas(self) -> list[Path]:
        """The meta files of the rings in the session, in :meth:`ring_ids` order."""
        return [self.dir / _ring.meta_name(writer_id) for writer_id in self.ring_ids()]

    def ring_ids(self) -> list[str]:
        """The writer ids of the rings in the session, sorted (ids start with the pid and
        process start time). With ``os.scandir``: the dispatcher lists the directory ten times
        a second, and a pathlib glob was the largest cost of many idle rings."""
        try:
            with os.scandir(self.dir) as entries:
                names = [
                    e.name for e in entries if e.name.startswith("w-") and e.name.endswith(".meta")
                ]
        except FileNotFoundError:
            return []  # (as a glob of a removed directory)
        return sorted(_ring.writer_id_of_name(name) for name in names)

    def wait_finished_rings(self, timeout: float) -> bool:
        """Wait until the rings of writers that closed or died are drained and removed, so
        that the resume table covers every step they logged."""
        deadline = time.monotonic() + timeout
        while True:
            unfinished = [meta for meta in self.ring_metas() if _finished_not_removed(meta)]
            if not unfinished:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
