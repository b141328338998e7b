"""``metrana status``: what every session on this host is doing, read from outside.

Everything here is read-only on the session directory (see ``_session``): the run comes from
``config.json`` (never its API key), the dispatcher from ``dispatcher.json``, its lock and
``stats.json``, the writers from their ring meta files (``_stats.session_stats``), delivery
errors from ``errors.json`` (``_error_channel``). A session may change or vanish while it is
read (a dispatcher deletes the rings of finished writers, ``init()`` reaps old sessions):
whatever disappeared mid-read is simply left out.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import msgspec
import psutil

from .. import ring as _ring
from .._config import Config
from ._error_channel import errors_path, read_errors
from ._process import process_alive
from ._session import Session, session_root
from ._stats import DROP_REASONS, DispatcherStats, SessionStats, WriterStats, session_stats

__all__ = [
    "STALL_SECONDS",
    "DispatcherStatus",
    "Dropped",
    "ErrorSummary",
    "RunInfo",
    "SessionStatus",
    "WriterStatus",
    "collect_status",
]

# The dispatcher republishes stats.json every 0.5 s while its loop runs: a live dispatcher
# silent for longer than this is reported as stalled.
STALL_SECONDS = 5.0


class Dropped(msgspec.Struct):
    """Points that will never be stored, by reason (one field per ``DROP_REASONS`` name)."""

    queue_full: int
    on_close: int
    rejected: int
    total: int


class WriterStatus(msgspec.Struct):
    """One writer process (one ring) of a session."""

    writer_id: str
    pid: int
    rank: int | None  # RANK of the process's environment, when it had one at exec time
    local_rank: int | None
    alive: bool
    closed: bool
    ring_fill: float  # fraction of the ring in use (0.0 for an unbounded ring)
    logged: int
    delivered: int
    pending: int
    rejected: int
    dropped: Dropped
    points_per_s: float | None = None  # points logged per second, between two samples


class DispatcherStatus(msgspec.Struct):
    pid: int | None
    alive: bool  # some process holds the session's dispatcher lock
    health: str  # "ok", "starting", "stalled", "stopped", "failed"
    started_ns: int | None
    uptime_s: float | None
    stats_age_s: float | None  # how long ago stats.json was last republished
    stats_updated_ns: int | None
    stored: int = 0
    duplicates: int = 0
    replay_duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    inflight: int = 0
    spooled: int = 0
    replayed: int = 0


class RunInfo(msgspec.Struct):
    workspace: str
    project: str
    experiment_name: str | None
    run_name: str
    orchestration_id: str


class ErrorSummary(msgspec.Struct):
    count: int  # occurrences, repeats included
    distinct: int
    overflow: int  # distinct errors pushed out of the channel by newer ones
    last_kind: str | None = None
    last_message: str | None = None
    last_ns: int | None = None


class SessionStatus(msgspec.Struct):
    key: str
    dir: str
    # "running" (a dispatcher is alive), "waiting" (live writers, no dispatcher yet),
    # "orphaned" (rings left, nobody alive), "failed" (the handshake failed), "finished"
    state: str
    run: RunInfo | None
    target: str | None  # "embedded:<store path>", "offline" or the server URL
    experiment_id: int | None
    handshake: str | None  # "ready", "failed" or None (not answered yet)
    handshake_error: str | None
    ring_capacity: int | None  # events per ring (0 = unbounded), from the session's config
    dispatcher: DispatcherStatus
    writers: list[WriterStatus]
    # Sums over the writers' rings still in the session (the dispatcher removes a ring once
    # its writer closed or died and everything in it was handled).
    logged: int
    delivered: int
    pending: int
    rejected: int
    dropped: Dropped
    points_per_s: float | None  # points the target acknowledged per second
    rate_basis: str | None  # "sample" (two samples) or "uptime" (the dispatcher's lifetime)
    errors: ErrorSummary
    log_file: str
    sampled_ns: int


def collect_status(
    root: Path | None = None, previous: Mapping[str, SessionStatus] | None = None
) -> list[SessionStatus]:
    """The status of every session under ``root`` (default: this user's session root).

    With ``previous`` (the last sample, by session key) rates come from the two samples;
    without, from the dispatcher's counters over its uptime."""
    base = session_root() if root is None else root
    try:
        directories = sorted(p for p in base.iterdir() if p.is_dir())
    except OSError:
        return []
    sessions = []
    for directory in directories:
        try:
            status = _session_status(directory, (previous or {}).get(directory.name))
        except OSError:  # the session went away while being read
            continue
        if status is not None:
            sessions.append(status)
    sessions.sort(key=lambda s: (s.dispatcher.started_ns or 0, s.key))
    return sessions


def _read_config(session: Session) -> Config | None:
    try:
        return session.read_config()
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def _public_target(config: Config) -> str:
    """The target without any password a URL might carry."""
    target = config.target
    if config.ingestion_url is None:
        return target
    parts = urlsplit(target)
    if parts.password is None:
        return target
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _ranks(pid: int) -> tuple[int | None, int | None]:
    """RANK and LOCAL_RANK from a process's environment as it was at exec time (what torchrun
    and SLURM launchers set); a forked worker shows the rank of the process it was forked
    from. None when the process has none or cannot be read."""
    try:
        environ = psutil.Process(pid).environ()
    except (psutil.Error, OSError):
        return None, None

    def number(name: str) -> int | None:
        value = environ.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            return None

    rank = number("RANK")
    if rank is None:
        rank = number("SLURM_PROCID")
    local_rank = number("LOCAL_RANK")
    if local_rank is None:
        local_rank = number("SLURM_LOCALID")
    return rank, local_rank


def _writer_alive(stats: WriterStats) -> bool:
    try:
        return process_alive(*_ring.writer_process(stats.writer_id))
    except ValueError:
        return psutil.pid_exists(stats.pid)


def _dropped(counters: WriterStats | SessionStats) -> Dropped:
    counts = {reason.name: getattr(counters, reason.counter) for reason in DROP_REASONS}
    return Dropped(**counts, total=sum(counts.values()))


# The dispatcher's counters, as status shows them (the fields of DispatcherStatus it copies).
_DISPATCHER_COUNTERS = (
    "stored", "duplicates", "replay_duplicates", "rejected",
    "batches", "inflight", "spooled", "replayed",
)  # fmt: skip


def _acknowledged(stats: DispatcherStats | DispatcherStatus) -> int:
    return stats.stored + stats.duplicates + stats.rejected


def _dispatcher_status(
    session: Session, stats: DispatcherStats | None, handshake_failed: bool, now_ns: int
) -> DispatcherStatus:
    info = session.read_info()
    # The lock is the authority (the kernel drops it when its holder dies, however it dies).
    # Probing it needs the lock file: without one no dispatcher ever ran here.
    lock_held = session.lock_path.exists() and session.dispatcher_alive()
    info_alive = info is not None and process_alive(info.pid, info.create_ms)
    # Without dispatcher.json a live lock holder is a new dispatcher not yet announced (the
    # stats still name its predecessor); a dead one is known by its last stats.
    pid = info.pid if info is not None else (stats.pid if stats and not lock_held else None)
    current = stats if stats is not None and stats.pid == pid else None
    if lock_held:
        if not info_alive or current is None:
            health = "starting"
        elif (now_ns - current.updated_ns) / 1e9 > STALL_SECONDS:
            health = "stalled"
        else:
            health = "ok"
    else:
        health = "failed" if handshake_failed else "stopped"
    started_ns = info.started_ns if info is not None else (stats.started_ns if stats else None)
    end_ns = now_ns if lock_held else (current.updated_ns if current is not None else None)
    status = DispatcherStatus(
        pid=pid,
        alive=lock_held,
        health=health,
        started_ns=started_ns,
        uptime_s=(
            round((end_ns - started_ns) / 1e9, 3)
            if started_ns is not None and end_ns is not None
            else None
        ),
        stats_age_s=round((now_ns - current.updated_ns) / 1e9, 3) if current else None,
        stats_updated_ns=current.updated_ns if current else None,
    )
    if current is not None:
        for name in _DISPATCHER_COUNTERS:
            setattr(status, name, getattr(current, name))
    return status


def _session_rate(
    stats: DispatcherStats | None, dispatcher: DispatcherStatus, previous: SessionStatus | None
) -> tuple[float | None, str | None]:
    """Points the target acknowledged per second: between the dispatcher's stats of the last
    sample and of this one, or else over the dispatcher's uptime."""
    if stats is None or dispatcher.pid != stats.pid:
        return None, None
    acknowledged = _acknowledged(stats)
    before = previous.dispatcher if previous is not None else None
    if before is not None and before.pid == stats.pid and before.stats_updated_ns is not None:
        if not dispatcher.alive:
            return 0.0, "sample"
        elapsed = (stats.updated_ns - before.stats_updated_ns) / 1e9
        acknowledged_before = _acknowledged(before)
        if elapsed > 0 and acknowledged >= acknowledged_before:
            return round((acknowledged - acknowledged_before) / elapsed, 1), "sample"
        if elapsed == 0 and previous is not None and previous.points_per_s is not None:
            return previous.points_per_s, "sample"  # not republished since the last sample
    uptime = (stats.updated_ns - stats.started_ns) / 1e9
    if uptime <= 0:
        return None, None
    return round(acknowledged / uptime, 1), "uptime"


def _session_status(directory: Path, previous: SessionStatus | None) -> SessionStatus | None:
    session = Session(directory)
    names = {p.name for p in directory.iterdir()}
    if not names & {"config.json", "dispatcher.json", "stats.json"} and not any(
        name.startswith("w-") for name in names
    ):
        return None  # not a session directory (or one being created)
    now_ns = time.time_ns()
    config = _read_config(session)
    handshake = session.read_handshake()
    counters: SessionStats = session_stats(directory)
    dispatcher = _dispatcher_status(
        session,
        counters.dispatcher,
        handshake is not None and handshake.status == "failed",
        now_ns,
    )

    previous_writers = {w.writer_id: w for w in previous.writers} if previous else {}
    elapsed = (now_ns - previous.sampled_ns) / 1e9 if previous else 0.0
    writers = []
    for stats in counters.writers:
        alive = _writer_alive(stats)
        rank, local_rank = _ranks(stats.pid) if alive else (None, None)
        before = previous_writers.get(stats.writer_id)
        rate = None
        if before is not None and elapsed > 0:
            rate = round(max(0, stats.logged - before.logged) / elapsed, 1)
        writers.append(
            WriterStatus(
                writer_id=stats.writer_id,
                pid=stats.pid,
                rank=rank,
                local_rank=local_rank,
                alive=alive,
                closed=stats.closed,
                ring_fill=stats.ring_fill,
                logged=stats.logged,
                delivered=stats.delivered,
                pending=stats.pending,
                rejected=stats.rejected,
                dropped=_dropped(stats),
                points_per_s=rate,
            )
        )

    points_per_s, basis = _session_rate(counters.dispatcher, dispatcher, previous)

    errors = read_errors(errors_path(directory))
    if errors is None:
        error_summary = ErrorSummary(count=0, distinct=0, overflow=0)
    else:
        last = max(errors.errors, key=lambda e: e.last_ns, default=None)
        error_summary = ErrorSummary(
            count=sum(e.count for e in errors.errors) + errors.overflow,
            distinct=len(errors.errors) + errors.overflow,
            overflow=errors.overflow,
            last_kind=last.kind if last else None,
            last_message=last.message if last else None,
            last_ns=last.last_ns if last else None,
        )

    if dispatcher.alive:
        state = "running"
    elif any(w.alive and not w.closed for w in writers):
        state = "waiting"  # a live writer starts a dispatcher within half a second
    elif writers:
        state = "orphaned"  # the next dispatcher of this session delivers what is left
    elif dispatcher.health == "failed":
        state = "failed"
    else:
        state = "finished"

    return SessionStatus(
        key=directory.name,
        dir=str(directory),
        state=state,
        run=(
            RunInfo(
                workspace=config.run.workspace_name,
                project=config.run.project_name,
                experiment_name=config.run.experiment_name,
                run_name=config.run.run_name,
                orchestration_id=config.orchestration_id,
            )
            if config is not None
            else None
        ),
        target=_public_target(config) if config is not None else None,
        experiment_id=handshake.experiment_id if handshake is not None else None,
        handshake=handshake.status if handshake is not None else None,
        handshake_error=handshake.error if handshake is not None else None,
        ring_capacity=config.event_queue_max_size if config is not None else None,
        dispatcher=dispatcher,
        writers=writers,
        logged=sum(w.logged for w in writers),
        delivered=counters.delivered,
        pending=counters.pending,
        rejected=counters.rejected,
        dropped=_dropped(counters),
        points_per_s=points_per_s,
        rate_basis=basis,
        errors=error_summary,
        log_file=str(session.log_path),
        sampled_ns=now_ns,
    )
