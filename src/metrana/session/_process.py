"""Process identity: a process is its pid *and* its create time, so a reused pid is never taken
for the process that had it. The identity of the current process is injectable, so that fork
behaviour can be tested in one process (``metrana.testing.simulate_fork``)."""

from __future__ import annotations

import itertools
import os
import time

import msgspec

__all__ = [
    "ProcessIdentity",
    "current_process",
    "process_alive",
    "process_create_ms",
]


class ProcessIdentity(msgspec.Struct, frozen=True):
    """A process: its pid and its create time in milliseconds."""

    pid: int
    create_ms: int


# A pid above Linux's pid_max (2**22), so a simulated process never matches a real one.
_SIMULATED_PID_BASE = 1 << 22
_simulated_pids = itertools.count(_SIMULATED_PID_BASE + 1)
_simulated: ProcessIdentity | None = None
_simulated_alive: set[tuple[int, int]] = set()
_cached: ProcessIdentity | None = None


def process_create_ms(pid: int | None = None) -> int:
    """A process's create time in milliseconds: with its pid, the identity of a process."""
    import psutil  # ~25 ms to import: every training process pays `import metrana`

    return int(psutil.Process(pid).create_time() * 1000)


def current_process() -> ProcessIdentity:
    """The identity of this process (a simulated child's after ``simulate_fork``)."""
    global _cached
    if _simulated is not None:
        return _simulated
    pid = os.getpid()
    if _cached is None or _cached.pid != pid:
        _cached = ProcessIdentity(pid, process_create_ms())
    return _cached


def process_alive(pid: int, create_ms: int) -> bool:
    """True when the process ``pid`` exists, is not a zombie, and was created at ``create_ms``."""
    if (pid, create_ms) in _simulated_alive:
        return True
    if pid > _SIMULATED_PID_BASE:
        return False  # a simulated process that ended (or one from another test process)
    import psutil

    try:
        process = psutil.Process(pid)
        if abs(int(process.create_time() * 1000) - create_ms) > 1:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def simulate_child() -> ProcessIdentity:
    """Become a simulated child process: a new identity, alive until :func:`end_simulation`."""
    global _simulated
    _simulated = ProcessIdentity(next(_simulated_pids), int(time.time() * 1000))
    _simulated_alive.add((_simulated.pid, _simulated.create_ms))
    return _simulated


def end_simulation() -> None:
    """Back to the real identity; simulated processes count as dead from now on."""
    global _simulated
    _simulated = None
    _simulated_alive.clear()
