"""Sessions: one run on one host, shared by every writer process of a job and one dispatcher.

A session directory (under ``/dev/shm`` where it exists, else the temp dir; mode 0700) holds::

    config.json       the resolved configuration of the writer that started the dispatcher
    dispatcher.lock   held (flock) by the live dispatcher for its whole life: the election
    spawn.lock        serialises writers deciding whether to start a dispatcher
    dispatcher.json   pid and create time of the dispatcher holding the lock
    handshake.json    the dispatcher's answer: ready (experiment id, resume table) or failed
    dispatcher.log    the dispatcher's log lines
    w-<id>.meta/.seg  one ring per writer process (see ``_ring``)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

# filelock and psutil cost ~25 ms to import: every training process pays `import metrana`,
# so they load when first needed.
if TYPE_CHECKING:
    import filelock

from ._config import Config
from ._errors import MetranaConfigError, MetranaDispatcherError, MetranaRunExistsError

__all__ = [
    "DispatcherInfo",
    "Handshake",
    "Session",
    "process_alive",
    "process_create_ms",
    "session_root",
]


class _DispatcherVanished(MetranaDispatcherError):
    """The dispatcher died before its handshake without saying why (killed): start another."""


def live_dispatchers(session_root: Path) -> list[int]:
    """Pids of the live dispatchers of the sessions under ``session_root`` (by pid and create
    time, so a reused pid is not mistaken for one)."""
    pids = []
    for info_path in session_root.glob("*/dispatcher.json"):
        info = _read_struct(info_path, DispatcherInfo)
        if info is not None and process_alive(info.pid, info.create_ms):
            pids.append(info.pid)
    return pids


def _finished_not_removed(meta_path: Path) -> bool:
    """A ring whose writer closed or died, not yet removed by the dispatcher (which removes it
    once every record is committed, after publishing the steps it read in resume.json)."""
    from . import _ring

    meta = _ring.read_meta(meta_path)
    if meta is None:
        return False
    closed = meta[_ring.M_STATE] == _ring.STATE_CLOSED
    return closed or not process_alive(int(meta[_ring.M_PID]), int(meta[_ring.M_CREATE_MS]))


class Handshake(msgspec.Struct):
    """The dispatcher's answer to the run handshake, read by every writer at ``init()``."""

    status: str  # "ready" or "failed"
    dispatcher_pid: int
    experiment_id: int | None = None
    error: str | None = None
    error_kind: str | None = None  # "run_exists", "refused", "unreachable", "internal"
    resume: list[tuple[str, str, str, int]] = []  # (metric, scale, labels json, last step)


class DispatcherInfo(msgspec.Struct):
    pid: int
    create_ms: int
    started_ns: int


def session_root() -> Path:
    """Where session directories live: ``METRANA_SESSION_ROOT``, else ``/dev/shm``, else tmp."""
    override = os.environ.get("METRANA_SESSION_ROOT")
    if override:
        return Path(override)
    base = Path("/dev/shm")
    if not (base.is_dir() and os.access(base, os.W_OK)):
        import tempfile

        base = Path(tempfile.gettempdir())
    return base / f"metrana-{os.getuid()}"


def process_create_ms(pid: int | None = None) -> int:
    """A process's create time in milliseconds: with its pid, the identity of a process."""
    import psutil

    return int(psutil.Process(pid).create_time() * 1000)


def process_alive(pid: int, create_ms: int) -> bool:
    """True when the process ``pid`` exists, is not a zombie, and was created at ``create_ms``."""
    import psutil

    try:
        process = psutil.Process(pid)
        if abs(int(process.create_time() * 1000) - create_ms) > 1:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _read_struct(path: Path, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(path.read_bytes(), type=kind)
    except (FileNotFoundError, msgspec.DecodeError):
        return None


STALE_SESSION_SECONDS = 3600.0


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
            session = Session(directory)
            if any(directory.glob("w-*")) or session.dispatcher_alive():
                continue
            for path in directory.iterdir():
                path.unlink()
            directory.rmdir()
            removed += 1
        except OSError:
            continue
    return removed


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
            session.ensure_dispatcher(session.read_config(), timeout)
        except (OSError, MetranaDispatcherError, msgspec.DecodeError):
            continue
        recovered.append(session)
    return recovered


def _writer_alive(meta_path: Path) -> bool:
    from . import _ring

    try:
        pid, create_ms = _ring.writer_process_of(meta_path)
    except ValueError:
        return True  # not a writer's ring: not ours to take
    return process_alive(pid, create_ms)


class Session:
    """A session directory and the operations on it that writers and the dispatcher share."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.config_path = directory / "config.json"
        self.lock_path = directory / "dispatcher.lock"
        self.spawn_lock_path = directory / "spawn.lock"
        self.info_path = directory / "dispatcher.json"
        self.handshake_path = directory / "handshake.json"
        self.previous_handshake_path = directory / "handshake.previous.json"
        self.log_path = directory / "dispatcher.log"

    @staticmethod
    def key(config: Config) -> str:
        """Derived from the target, the run identity and the job's orchestration id."""
        run = config.run
        parts = [
            config.target,
            run.workspace_name,
            run.project_name,
            run.experiment_name or "",
            run.run_name,
            config.orchestration_id,
        ]
        return hashlib.sha256(msgspec.json.encode(parts)).hexdigest()[:24]

    @classmethod
    def for_config(cls, config: Config) -> Session:
        root = session_root()
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory = root / cls.key(config)
        directory.mkdir(mode=0o700, exist_ok=True)
        return cls(directory)

    def write_config(self, config: Config) -> None:
        _atomic_write(self.config_path, msgspec.json.encode(config))

    def read_config(self) -> Config:
        return msgspec.json.decode(self.config_path.read_bytes(), type=Config)

    def write_handshake(self, handshake: Handshake) -> None:
        _atomic_write(self.handshake_path, msgspec.json.encode(handshake))

    def read_handshake(self) -> Handshake | None:
        result: Handshake | None = _read_struct(self.handshake_path, Handshake)
        return result

    def read_previous_handshake(self) -> Handshake | None:
        """The handshake of the dispatcher this one replaced, if it had opened the run."""
        result: Handshake | None = _read_struct(self.previous_handshake_path, Handshake)
        return result if result is not None and result.status == "ready" else None

    def write_info(self, info: DispatcherInfo) -> None:
        _atomic_write(self.info_path, msgspec.json.encode(info))

    def read_info(self) -> DispatcherInfo | None:
        result: DispatcherInfo | None = _read_struct(self.info_path, DispatcherInfo)
        return result

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

    def ensure_dispatcher(self, config: Config, timeout: float) -> subprocess.Popen[bytes] | None:
        """Start a dispatcher unless one is alive; return the process if this call started it.

        Writers decide under ``spawn.lock``, so a crowd of ranks starting at once yields one
        dispatcher. The dispatcher is a detached ``python -m metrana.dispatcher`` (never a fork
        of the caller) and is waited for until it holds its lock.
        """
        import filelock

        with filelock.FileLock(str(self.spawn_lock_path), timeout=timeout):
            if self.dispatcher_alive():
                return None
            # Kept for the successor: if the target is unreachable when it starts, it carries
            # on with the run its predecessor opened (spooling) instead of failing.
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.handshake_path, self.previous_handshake_path)
            with contextlib.suppress(FileNotFoundError):
                self.info_path.unlink()
            self.write_config(config)
            process = self._spawn()
            deadline = time.monotonic() + timeout
            while True:
                info = self.read_info()
                if info is not None and info.pid == process.pid:
                    return process
                code = process.poll()
                if code is not None and code < 0:
                    raise _DispatcherVanished(
                        f"the dispatcher was killed (signal {-code}) before taking its lock"
                    )
                if code is not None:
                    raise MetranaDispatcherError(
                        f"the dispatcher exited with code {code} before taking its lock; "
                        f"its log: {self.log_tail()}"
                    )
                if time.monotonic() > deadline:
                    raise MetranaDispatcherError(
                        f"the dispatcher did not start within {timeout:.0f} s; "
                        f"its log: {self.log_tail()}"
                    )
                time.sleep(0.002)

    def _spawn(self) -> subprocess.Popen[bytes]:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "metrana.dispatcher", str(self.dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            log.close()

    @property
    def resume_path(self) -> Path:
        return self.dir / "resume.json"

    def write_resume(self, table: list[tuple[str, str, str, int]]) -> None:
        """The dispatcher's table of the last step it has read per series (for joiners)."""
        _atomic_write(self.resume_path, msgspec.json.encode(table))

    def read_resume(self) -> list[tuple[str, str, str, int]]:
        table: list[tuple[str, str, str, int]] | None = _read_struct(
            self.resume_path, list[tuple[str, str, str, int]]
        )
        return table or []

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

    def join(
        self, config: Config, timeout: float
    ) -> tuple[subprocess.Popen[bytes] | None, Handshake]:
        """Make sure a dispatcher runs and answer its handshake.

        A dispatcher killed before its handshake (a signal, the OOM killer) is replaced until
        ``timeout``; one that fails on its own (its handshake says why, or it exits with an
        error) is reported at once."""
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            remaining = max(0.5, deadline - time.monotonic())
            try:
                process = self.ensure_dispatcher(config, remaining)
                return process, self.wait_handshake(remaining, process)
            except _DispatcherVanished as vanished:
                attempt += 1
                if time.monotonic() > deadline:
                    raise MetranaDispatcherError(
                        f"{vanished}; gave up after {attempt} dispatchers; "
                        f"its log ({self.log_path}): {self.log_tail()}"
                    ) from None

    def wait_handshake(self, timeout: float, process: subprocess.Popen[bytes] | None) -> Handshake:
        """Wait for the live dispatcher's handshake; raise if it failed or never came."""
        deadline = time.monotonic() + timeout
        delay = 0.001
        next_liveness = time.monotonic() + 0.05
        while True:
            handshake = self.read_handshake()
            if handshake is not None:
                if handshake.status == "ready":
                    return handshake
                message = handshake.error or "the dispatcher could not open the run"
                if handshake.error_kind == "run_exists":
                    raise MetranaRunExistsError(message)
                if handshake.error_kind == "config":
                    raise MetranaConfigError(message)
                raise MetranaDispatcherError(message)
            if process is not None and process.poll() is not None:
                if self.read_handshake() is not None:
                    continue  # written just before it exited (say, a refusal): read it above
                if process.returncode < 0:
                    raise _DispatcherVanished(
                        f"the dispatcher was killed (signal {-process.returncode}) before its "
                        "handshake"
                    )
                raise MetranaDispatcherError(
                    f"the dispatcher exited with code {process.returncode} before its "
                    f"handshake; its log: {self.log_tail()}"
                )
            now = time.monotonic()
            if process is None and now >= next_liveness:
                next_liveness = now + 0.05
                if not self.dispatcher_alive() and self.read_handshake() is None:
                    raise _DispatcherVanished("the dispatcher died before its handshake")
            if now > deadline:
                raise MetranaDispatcherError(
                    f"no handshake from the dispatcher within {timeout:.0f} s; "
                    f"its log ({self.log_path}): {self.log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty)"

    def ring_metas(self) -> list[Path]:
        """The meta files of the rings in the session, in :meth:`ring_ids` order."""
        from . import _ring  # (imports this module)

        return [self.dir / _ring.meta_name(writer_id) for writer_id in self.ring_ids()]

    def ring_ids(self) -> list[str]:
        """The writer ids of the rings in the session, sorted (ids start with the pid and
        process start time). With ``os.scandir``: the dispatcher lists the directory ten times
        a second, and a pathlib glob was the largest cost of many idle rings."""
        from . import _ring  # (imports this module)

        try:
            with os.scandir(self.dir) as entries:
                names = [
                    e.name for e in entries if e.name.startswith("w-") and e.name.endswith(".meta")
                ]
        except FileNotFoundError:
            return []  # (as a glob of a removed directory)
        return sorted(_ring.writer_id_of_name(name) for name in names)
