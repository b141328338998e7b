"""The disk spool: durable appends, ordered replay, torn tails, the size cap, offline mode."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

import metrana
from metrana._identity import ValueRun
from metrana.dispatcher._spool import Spool, SpoolFullError, spool_root
from metrana.storage import SeriesColumns


def _batch(metric: str, steps: range) -> dict[tuple[str, str, str], SeriesColumns]:
    return {
        (metric, "ML_STEP", "{}"): SeriesColumns(
            list(steps), [float(s) for s in steps], [1_000 + s for s in steps]
        )
    }


def test_append_then_replay_in_order_then_acknowledge(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    assert spool.empty()
    ids = [spool.append(_batch("m", range(i * 10, i * 10 + 10))) for i in range(3)]
    assert ids == [1, 2, 3]
    pending = list(spool.pending())
    assert [b.batch_id for b in pending] == [1, 2, 3]
    assert pending[1].series[("m", "ML_STEP", "{}")].steps == list(range(10, 20))
    spool.acknowledge(pending[0])
    reopened = Spool(tmp_path / "s")  # a new owner continues where replay stopped
    assert [b.batch_id for b in reopened.pending()] == [2, 3]
    assert reopened.append(_batch("m", range(30, 31))) == 4  # ids never repeat
    for batch in list(reopened.pending()):
        reopened.acknowledge(batch)
    assert reopened.clear_if_empty()
    assert not list((tmp_path / "s").glob("*.spool"))


def test_bulk_points_held_as_raw_runs_are_spooled_exactly(tmp_path: Path) -> None:
    values = [0.5, float("inf"), -1.0]
    data = b"".join(struct.pack("<d", v) for v in values)
    runs = [ValueRun(7, "d", data, 99), ValueRun(10, "q", struct.pack("<q", -(2**63)), 100)]
    spool = Spool(tmp_path / "s")
    spool.append({("m", "ML_STEP", "{}"): SeriesColumns([], [], [], runs)})
    (batch,) = Spool(tmp_path / "s").pending()
    columns = batch.series[("m", "ML_STEP", "{}")]
    assert (columns.steps, columns.values, columns.timestamps) == (
        [7, 8, 9, 10],
        [*values, -(2**63)],
        [99, 99, 99, 100],
    )
    assert batch.points == 4


def test_a_torn_tail_is_ignored(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    spool.append(_batch("m", range(5)))
    (path,) = (tmp_path / "s").glob("*.spool")
    with open(path, "ab") as handle:
        handle.write(b"\x40\x00\x00\x00garbage")  # a crash in the middle of an append
    assert [b.batch_id for b in Spool(tmp_path / "s").pending()] == [1]


def test_the_cap_raises_a_clear_error_and_keeps_what_was_spooled(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=400)
    spool.append(_batch("m", range(5)))
    with pytest.raises(SpoolFullError, match="METRANA_SPOOL_MAX_BYTES"):
        for i in range(100):
            spool.append(_batch("m", range(i, i + 5)))
    assert next(iter(spool.pending())).batch_id == 1


@pytest.mark.slow
def test_offline_mode_spools_every_point(isolated: Path) -> None:
    metrana.init(
        workspace_name="w", project_name="p", run_name="air-gapped", ingestion_url="offline"
    )
    for step in range(5_000):
        metrana.log("loss", float(step))
    metrana.close(close_strategy="CompleteAll")
    (directory,) = spool_root(isolated).iterdir()
    spool = Spool(directory)
    points = [s for b in spool.pending() for c in b.series.values() for s in c.steps]
    assert sorted(points) == list(range(5_000))
    run = spool.read_run()
    assert (run.run.run_name, run.ingestion_url, run.api_key) == ("air-gapped", "offline", None)
    assert os.stat(directory).st_mode & 0o777 == 0o700


def test_every_epoch_of_a_spool_has_its_own_producer_id(tmp_path: Path) -> None:
    """Batch ids start again at 1 in an emptied spool; the server deduplicates replays by
    (producer, batch id), so a new epoch must not reuse the producer id of the last one."""
    spool = Spool(tmp_path / "s")
    first = spool.producer_id
    spool.append(_batch("m", range(3)))
    reopened = Spool(tmp_path / "s")  # a successor with the batch still pending keeps it
    assert reopened.producer_id == first
    for batch in list(reopened.pending()):
        reopened.acknowledge(batch)
    assert reopened.clear_if_empty()
    assert reopened.producer_id != first
    assert reopened.append(_batch("m", range(3, 6))) == 2  # ids go on in this process
    fresh = Spool(tmp_path / "s")
    assert fresh.producer_id == reopened.producer_id
    for batch in list(fresh.pending()):
        fresh.acknowledge(batch)
    fresh.clear_if_empty()
    again = Spool(tmp_path / "s")  # empty: a new epoch, ids from 1, a new producer
    assert again.append(_batch("m", range(6, 9))) == 1
    assert again.producer_id not in (first, reopened.producer_id)


def test_a_dispatcher_killed_while_clearing_the_spool_leaves_no_stale_cursor(
    tmp_path: Path,
) -> None:
    """Killed after the spool files went but before the cursor did (the order of an older
    version), the next epoch's first batches were skipped: found by the two-outage test when
    its replacement dispatcher started during the second outage."""
    spool = Spool(tmp_path / "s")
    spool.append(_batch("m", range(3)))
    spool.append(_batch("m", range(3, 6)))
    for batch in list(spool.pending()):
        spool.acknowledge(batch)
    assert (tmp_path / "s" / "cursor.json").exists()
    for path in (tmp_path / "s").glob("*.spool"):  # clear_if_empty, cut short
        path.unlink()
    successor = Spool(tmp_path / "s")
    assert successor.producer_id != spool.producer_id  # no pending batch: a new epoch
    assert successor.append(_batch("m", range(6, 9))) == 1
    pending = list(successor.pending())
    assert [b.batch_id for b in pending] == [1]
    assert pending[0].series[("m", "ML_STEP", "{}")].steps == [6, 7, 8]
