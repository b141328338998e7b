"""Runs, as ``metrana.init()`` addresses them: an experiment named ``run_name`` in the folder
``/workspace/project[/experiment_name]``, all created on demand."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from . import _folders
from ._base import RunHandle, RunSummary, StorageRunExistsError
from ._db import Connection, any_decoder, encode_json


def open_run(
    conn: Connection,
    workspace: str,
    project: str,
    experiment_name: str | None,
    run_name: str,
    orchestration_id: str,
    allow_resume: bool,
    metadata: Mapping[str, Any] | None = None,
) -> RunHandle:
    """Create or resume a run; answer its id and the last stored step of every series.
    ``metadata`` is merged into the run's (shallow: its keys replace the stored ones).

    Raises StorageRunExistsError when the run exists, belongs to another job (another
    orchestration id) and ``allow_resume`` is False.
    """
    workspace_id = _folders.workspace(conn, workspace)
    folder_id = _folders.ensure(conn, workspace_id, None, project)
    if experiment_name is not None:
        folder_id = _folders.ensure(conn, workspace_id, folder_id, experiment_name)
    found = conn.execute(
        "SELECT id, orchestration_id, metadata FROM experiments WHERE folder_id=? AND name=?",
        (folder_id, run_name),
    ).fetchone()
    now = time.time_ns()
    stored = encode_json({**(any_decoder.decode(found[2]) if found else {}), **(metadata or {})})
    if found is None:
        cursor = conn.execute(
            "INSERT INTO experiments (workspace_id, folder_id, name, status, "
            "orchestration_id, metadata, created_ns, updated_ns) VALUES (?,?,?,?,?,?,?,?)",
            (workspace_id, folder_id, run_name, "running", orchestration_id, stored, now, now),
        )
        return RunHandle(experiment_id=int(cursor.lastrowid or 0), created=True, resume=[])
    experiment_id, owner = int(found[0]), found[1]
    if not allow_resume and owner != orchestration_id:
        path = "/".join(p for p in (workspace, project, experiment_name, run_name) if p)
        raise StorageRunExistsError(
            f"run {path!r} already exists (created by job {owner!r}) and "
            "resume_strategy is 'Never'; choose another run_name or use "
            "resume_strategy='Allow'"
        )
    conn.execute(
        "UPDATE experiments SET status='running', orchestration_id=?, metadata=?, updated_ns=? "
        "WHERE id=?",
        (orchestration_id, stored, now, experiment_id),
    )
    resume = [
        (str(name), str(scale), str(labels), int(last))
        for name, scale, labels, last in conn.execute(
            "SELECT s.metric_name, s.scale, s.labels, "
            "(SELECT MAX(c.last_step) FROM chunks c WHERE c.series_id = s.id) AS last "
            "FROM series s WHERE s.experiment_id=? AND last IS NOT NULL",
            (experiment_id,),
        )
    ]
    return RunHandle(experiment_id=experiment_id, created=False, resume=resume)


def set_status(conn: Connection, experiment_id: int, status: str) -> None:
    """Set a run's status (running, done, error...)."""
    conn.execute(
        "UPDATE experiments SET status=?, updated_ns=? WHERE id=?",
        (status, time.time_ns(), experiment_id),
    )


def runs(conn: Connection) -> list[RunSummary]:
    """Every run in the store with its series and point counts."""
    rows = conn.execute(
        """
        SELECT e.id, w.name, COALESCE(pf.name, f.name),
               CASE WHEN pf.id IS NULL THEN NULL ELSE f.name END,
               e.name, e.status,
               (SELECT COUNT(*) FROM series s WHERE s.experiment_id = e.id),
               (SELECT IFNULL(SUM(c.count), 0) FROM chunks c
                 JOIN series s ON c.series_id = s.id WHERE s.experiment_id = e.id)
        FROM experiments e
        JOIN workspaces w ON w.id = e.workspace_id
        JOIN folders f ON f.id = e.folder_id
        LEFT JOIN folders pf ON pf.id = f.parent_id
        ORDER BY e.id
        """
    ).fetchall()
    return [
        RunSummary(
            experiment_id=r[0],
            workspace=r[1],
            project=r[2],
            experiment_name=r[3],
            run_name=r[4],
            status=r[5],
            series=r[6],
            points=r[7],
        )
        for r in rows
    ]


def find_run(
    conn: Connection, workspace: str, project: str, run_name: str, experiment_name: str | None
) -> RunSummary | None:
    """The first run with this address; with no ``experiment_name``, a run in an experiment
    folder of the project matches too."""
    for run in runs(conn):
        if (run.workspace, run.project, run.run_name, run.experiment_name) == (
            workspace,
            project,
            run_name,
            experiment_name,
        ) or (
            experiment_name is None
            and (run.workspace, run.project, run.run_name) == (workspace, project, run_name)
        ):
            return run
    return None
