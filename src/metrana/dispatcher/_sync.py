"""``metrana sync``: replay spools by hand (after an outage, or an offline run)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import filelock
import msgspec

from .._config import OFFLINE, Config
from .._errors import MetranaConfigError
from ._spool import Spool, SpooledBatch, spool_root
from .targets import DeliveryFailure, RejectedBatch

Progress = Callable[[str, int, int], None]  # (spool, points sent so far, points in spool)


class SyncResult(msgspec.Struct):
    spool: str
    run_name: str
    batches: int
    points: int
    accepted: int
    duplicates: int
    rejected: int
    skipped: str | None = None


def sync_spools(
    home: str | Path,
    *,
    url: str | None = None,
    api_key: str | None = None,
    run_name: str | None = None,
    progress: Progress | None = None,
    lock_wait: float = 5.0,
) -> list[SyncResult]:
    """Deliver every spooled batch (of ``run_name``, or of every run) to its server.

    ``url`` overrides the server a spool was meant for (required for offline spools);
    ``api_key`` is an API key of the server. A spool owned by a live dispatcher is skipped after
    waiting ``lock_wait`` seconds (a dispatcher whose writers all closed exits within that).
    Replayed batches keep their identity, so syncing twice stores nothing twice.
    """
    results = []
    root = spool_root(home)
    for directory in sorted(p for p in root.glob("*") if p.is_dir()):
        spool = Spool(directory)
        try:
            config = spool.read_run()
        except (FileNotFoundError, msgspec.DecodeError):
            continue
        if run_name is not None and config.run.run_name != run_name:
            continue
        result = SyncResult(str(directory), config.run.run_name, 0, 0, 0, 0, 0)
        target_url = url or config.ingestion_url
        if target_url is None or target_url == OFFLINE:
            raise MetranaConfigError(
                f"the spool of run {config.run.run_name!r} was written offline: "
                "pass --url to say which server should receive it"
            )
        if not api_key:
            raise MetranaConfigError("metrana sync needs an API key: --api-key or METRANA_API_KEY")
        try:
            spool.acquire(timeout=lock_wait)
        except filelock.Timeout:
            result.skipped = "a live dispatcher owns this spool and replays it itself"
            results.append(result)
            continue
        emptied = False
        try:
            pending = list(spool.pending())
            if pending:
                results.append(result)
                _deliver(spool, pending, config, target_url, api_key, result, progress)
            emptied = spool.clear_if_empty()
            if emptied:
                spool.forget_run()
        finally:
            spool.release()
        if emptied:
            shutil.rmtree(directory, ignore_errors=True)
    return results


def _deliver(
    spool: Spool,
    pending: list[SpooledBatch],
    config: Config,
    url: str,
    api_key: str,
    result: SyncResult,
    progress: Progress | None,
) -> None:
    """Send a spool's batches oldest first under their own identities; stop at the first
    batch that cannot be delivered now (it stays spooled)."""
    from .targets._http import HttpTarget

    total = sum(b.points for b in pending)
    live = msgspec.structs.replace(config, ingestion_url=url, api_key=api_key)
    target = HttpTarget(live)
    try:
        target.open_run(live)
        for batch in pending:
            try:
                answer = target.submit_spooled(batch.series, spool.producer_id, batch.batch_id)
                stored = answer.result()
            except RejectedBatch:
                result.rejected += batch.points
            except DeliveryFailure as error:
                result.skipped = f"stopped: {error}"
                return
            else:
                result.accepted += stored.accepted
                result.duplicates += stored.duplicates
            spool.acknowledge(batch)
            result.batches += 1
            result.points += batch.points
            if progress is not None:
                progress(str(spool.dir), result.points, total)
    finally:
        target.close()
