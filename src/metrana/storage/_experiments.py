"""Experiments (one per run, in a folder) and the annotations that hang off them.

An experiment's name is unique in its folder. Functions that take a ``workspace_id`` only see
that workspace's experiments: an id from another workspace reads as not found.
"""

from __future__ import annotations

import time
from typing import Any

from ..api import _types as t
from . import _folders
from ._base import ConflictError, InvalidRequestError
from ._db import Connection, and_equal, any_decoder, check_name, encode_json, require_row

_COLUMNS = (
    "SELECT id, workspace_id, folder_id, name, status, description, metadata, "
    "orchestration_id, created_ns, updated_ns FROM experiments "
)


def row(conn: Connection, workspace_id: int, experiment_id: int) -> Any:
    """The experiment's row (the columns of ``_COLUMNS``); NotFoundError outside the
    workspace."""
    return require_row(
        conn,
        _COLUMNS + "WHERE id=? AND workspace_id=?",
        (experiment_id, workspace_id),
        f"no experiment {experiment_id} in this workspace",
    )


def _experiment(found: Any) -> t.Experiment:
    return t.Experiment(
        id=found[0],
        workspace_id=found[1],
        folder_id=found[2],
        name=found[3],
        status=found[4],
        description=found[5],
        metadata=any_decoder.decode(found[6]),
        orchestration_id=found[7],
        created_ns=found[8],
        updated_ns=found[9],
    )


def _check_free(conn: Connection, folder_id: int, name: str) -> None:
    taken = conn.execute(
        "SELECT id FROM experiments WHERE folder_id=? AND name=?", (folder_id, name)
    ).fetchone()
    if taken is not None:
        raise ConflictError(
            f"an experiment named {name!r} already exists in that folder (id {taken[0]})"
        )


def get_experiment(conn: Connection, workspace_id: int, experiment_id: int) -> t.Experiment:
    """One experiment."""
    return _experiment(row(conn, workspace_id, experiment_id))


def list_experiments(
    conn: Connection, workspace_id: int, folder_id: int | None, status: str | None
) -> list[t.Experiment]:
    """The workspace's experiments (optionally only those in a folder, or with a status),
    oldest first."""
    query, args = and_equal(
        _COLUMNS + "WHERE workspace_id=?", [workspace_id], folder_id=folder_id, status=status
    )
    if folder_id is not None:
        _folders.row(conn, workspace_id, folder_id)
    rows = conn.execute(query + " ORDER BY id", args).fetchall()
    return [_experiment(found) for found in rows]


def check_new_experiment(request: t.ExperimentCreate) -> None:
    """Refuse what is wrong without reading the store. Engines also call it before taking
    the write lock, so that a bad request fails without waiting for it."""
    check_name("experiment name", request.name)


def create_experiment(
    conn: Connection, workspace_id: int, request: t.ExperimentCreate
) -> t.Experiment:
    """A new experiment in an existing folder, its name free there."""
    check_new_experiment(request)
    _folders.row(conn, workspace_id, request.folder_id)
    _check_free(conn, request.folder_id, request.name)
    now = time.time_ns()
    cursor = conn.execute(
        "INSERT INTO experiments (workspace_id, folder_id, name, status, description, "
        "metadata, created_ns, updated_ns) VALUES (?,?,?,?,?,?,?,?)",
        (
            workspace_id,
            request.folder_id,
            request.name,
            request.status,
            request.description,
            encode_json(request.metadata),
            now,
            now,
        ),
    )
    return get_experiment(conn, workspace_id, int(cursor.lastrowid or 0))


def update_experiment_status(
    conn: Connection, workspace_id: int, experiment_id: int, status: str
) -> t.Experiment:
    """Set an experiment's status."""
    row(conn, workspace_id, experiment_id)
    conn.execute(
        "UPDATE experiments SET status=?, updated_ns=? WHERE id=?",
        (status, time.time_ns(), experiment_id),
    )
    return get_experiment(conn, workspace_id, experiment_id)


def move_experiment(
    conn: Connection, workspace_id: int, experiment_id: int, folder_id: int
) -> t.Experiment:
    """Move an experiment to another folder that has no experiment of the same name."""
    found = row(conn, workspace_id, experiment_id)
    _folders.row(conn, workspace_id, folder_id)
    if found[2] != folder_id:
        _check_free(conn, folder_id, found[3])
        conn.execute(
            "UPDATE experiments SET folder_id=?, updated_ns=? WHERE id=?",
            (folder_id, time.time_ns(), experiment_id),
        )
    return get_experiment(conn, workspace_id, experiment_id)


# -- annotations --------------------------------------------------------------------------


def check_new_annotation(request: t.AnnotationCreate) -> None:
    """Refuse what is wrong without reading the store (see :func:`check_new_experiment`)."""
    if not request.text:
        raise InvalidRequestError("an annotation needs a non-empty text")


def create_annotation(
    conn: Connection, workspace_id: int, experiment_id: int, request: t.AnnotationCreate
) -> t.Annotation:
    """A note on an experiment, at a step and/or a time (now when not given)."""
    check_new_annotation(request)
    now = time.time_ns()
    row(conn, workspace_id, experiment_id)
    cursor = conn.execute(
        "INSERT INTO annotations (experiment_id, text, step, timestamp_ns, metadata, "
        "created_ns) VALUES (?,?,?,?,?,?)",
        (
            experiment_id,
            request.text,
            request.step,
            request.timestamp_ns or now,
            encode_json(request.metadata),
            now,
        ),
    )
    return t.Annotation(
        id=int(cursor.lastrowid or 0),
        experiment_id=experiment_id,
        text=request.text,
        step=request.step,
        timestamp_ns=request.timestamp_ns or now,
        metadata=request.metadata,
        created_ns=now,
    )


def list_annotations(conn: Connection, workspace_id: int, experiment_id: int) -> list[t.Annotation]:
    """An experiment's annotations, oldest first."""
    row(conn, workspace_id, experiment_id)
    rows = conn.execute(
        "SELECT id, experiment_id, text, step, timestamp_ns, metadata, created_ns "
        "FROM annotations WHERE experiment_id=? ORDER BY id",
        (experiment_id,),
    ).fetchall()
    return [
        t.Annotation(r[0], r[1], r[2], r[3], r[4], any_decoder.decode(r[5]), r[6]) for r in rows
    ]
