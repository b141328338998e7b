"""Runs, as ``metrana.init()`` addresses them: the experiment whose slug is ``run_name`` in the
folder ``workspace/project[/experiment_name]`` of an organization, all created on demand."""

from __future__ import annotations

from typing import Any

from ..api import _types as t
from . import _experiments, _folders
from ._base import InvalidRequestError, RunHandle, RunSummary, StorageRunExistsError
from ._db import Connection, now_ms


def open_run(
    conn: Connection,
    org_id: int,
    path: list[str],
    run_name: str,
    orchestration_id: str,
    allow_resume: bool,
    metadata: dict[str, Any] | None = None,
) -> RunHandle:
    """Create or resume the run ``run_name`` in the folder at ``path`` (created on demand);
    mark it running, merge ``metadata`` into its own, and answer its id and the last stored
    step of every series.

    Raises StorageRunExistsError when the run exists, belongs to another job (another
    orchestration id) and ``allow_resume`` is False.
    """
    for name in path:
        if "/" in name:
            raise InvalidRequestError(
                f"a workspace, project or experiment name cannot contain '/': {name!r}"
            )
    folder_id = _folders.ensure_path(conn, org_id, path)
    found = conn.execute(
        "SELECT id, orchestration_id FROM experiments WHERE org_id=? AND folder_id=? AND slug=?",
        (org_id, folder_id, run_name),
    ).fetchone()
    now = now_ms()
    if found is None:
        cursor = conn.execute(
            "INSERT INTO experiments (org_id, folder_id, slug, status, orchestration_id, "
            "created_ms, updated_ms) VALUES (?,?,?,'created',?,?,?)",
            (org_id, folder_id, run_name, orchestration_id, now, now),
        )
        experiment_id, created = int(cursor.lastrowid or 0), True
    else:
        experiment_id, owner, created = int(found[0]), found[1], False
        if not allow_resume and owner != orchestration_id:
            raise StorageRunExistsError(
                f"run {'/'.join([*path, run_name])!r} already exists (created by job "
                f"{owner!r}) and resume_strategy is 'Never'; choose another run_name or use "
                "resume_strategy='Allow'"
            )
        conn.execute(
            "UPDATE experiments SET orchestration_id=? WHERE id=?",
            (orchestration_id, experiment_id),
        )
    _experiments.set_status(conn, experiment_id, "running")
    _experiments.merge_metadata(conn, experiment_id, metadata or {})
    resume = [] if created else [
        (str(name), str(scale), str(labels), int(last))
        for name, scale, labels, last in conn.execute(
            "SELECT s.metric_name, s.scale, s.labels, MAX(c.last_step) "
            "FROM series s JOIN chunks c ON c.experiment_id = s.experiment_id "
            "AND c.series_id = s.id WHERE s.experiment_id=? "
            "GROUP BY s.id, s.metric_name, s.scale, s.labels",
            (experiment_id,),
        )
    ]  # fmt: skip
    return RunHandle(experiment_id=experiment_id, created=created, resume=resume)


def run_path(workspace: str, project: str, experiment_name: str | None) -> list[str]:
    """The folder path of a run of ``metrana.init()``."""
    return [workspace, project] + ([experiment_name] if experiment_name else [])


def set_status(
    conn: Connection, experiment_id: int, status: str, error: t.ExperimentStatusError | None
) -> None:
    """End (or restart) a run: ``running``, ``done`` or ``error``."""
    _experiments.set_status(conn, experiment_id, status, error)


def runs(conn: Connection) -> list[RunSummary]:
    """Every experiment in the store, of every organization, with its folder path split as
    ``metrana.init()`` names it, its series and point counts."""
    trees: dict[int, _folders.Tree] = {}
    summaries = []
    for experiment_id, org_id, org, folder_id, slug, status, series, points in conn.execute(
        """
        SELECT e.id, e.org_id, o.name, e.folder_id, e.slug, e.status,
               (SELECT COUNT(*) FROM series s WHERE s.experiment_id = e.id),
               (SELECT IFNULL(SUM(c.count), 0) FROM chunks c
                 JOIN series s ON c.experiment_id = s.experiment_id AND c.series_id = s.id
                 WHERE s.experiment_id = e.id)
        FROM experiments e JOIN organizations o ON o.id = e.org_id
        ORDER BY e.id
        """
    ).fetchall():
        path: list[str] = []
        if folder_id is not None:
            tree = trees.get(org_id) or trees.setdefault(org_id, _folders.Tree(conn, org_id))
            path = tree.folder(folder_id).path_name.split("/")
        summaries.append(
            RunSummary(
                experiment_id=experiment_id,
                organization=org,
                workspace=path[0] if path else "",
                project=path[1] if len(path) > 1 else "",
                experiment_name="/".join(path[2:]) or None,
                run_name=slug,
                status=status,
                series=series,
                points=points,
            )
        )
    return summaries


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
