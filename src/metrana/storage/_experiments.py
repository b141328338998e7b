"""Experiments (one per run, in a folder or at the top level) and the annotations that hang off
them.

An experiment's slug is unique in its folder (and among the top-level experiments). Its status
is ``created``, ``running``, ``done`` or ``error``, with the lifecycle times the Syvain API
defines: started when it first runs, done when it ends, and the last event and heartbeat that
ingestion records. Functions that take an ``org_id`` only see that organization's experiments:
an id from another reads as not found. ``url`` is the path of the experiment's page; the server
makes it absolute.
"""

from __future__ import annotations

from typing import Any

from msgspec import UNSET

from ..api import _types as t
from . import _folders
from ._base import ConflictError, InvalidRequestError
from ._db import FOR_UPDATE, Connection, any_decoder, encode_json, now_ms, parse_id, require_row

_COLUMNS = (
    "SELECT id, org_id, folder_id, slug, description, metadata, status, error_name, "
    "error_detail, created_ms, updated_ms, started_ms, done_ms, last_heartbeat_ms, "
    "last_event_ms, orchestration_id FROM experiments "
)


def url_path(experiment_id: int | str) -> str:
    """The path of an experiment's page on the dashboard."""
    return f"/experiments/{experiment_id}"


def row(conn: Connection, org_id: int, experiment_id: int, lock: bool = False) -> Any:
    """The experiment's row (the columns of ``_COLUMNS``); NotFoundError outside the
    organization. ``lock``: held until the transaction ends, so that writers of one
    experiment take turns (an engine with concurrent transactions locks the row)."""
    return require_row(
        conn,
        _COLUMNS + "WHERE id=? AND org_id=?" + (FOR_UPDATE if lock else ""),
        (experiment_id, org_id),
        f"no experiment {experiment_id} in this organization",
    )


def experiment(found: Any, tree: _folders.Tree) -> t.Experiment:
    """The API's view of an experiment row."""
    (experiment_id, org_id, folder_id, slug, description, metadata, status, error_name,
     error_detail, created, updated, started, done, heartbeat, event, job) = found  # fmt: skip
    return t.Experiment(
        id=str(experiment_id),
        org_id=str(org_id),
        folder=None if folder_id is None else tree.folder(folder_id),
        url=url_path(experiment_id),
        slug=slug,
        description=description,
        metadata=any_decoder.decode(metadata),
        status=status,
        error_name=error_name,
        error_detail=error_detail,
        created_at_ms=created,
        updated_at_ms=updated,
        started_at_ms=started,
        done_at_ms=done,
        last_heartbeat_at_ms=heartbeat,
        last_event_at_ms=event,
        orchestration_id=job,
    )


def get_experiment(conn: Connection, org_id: int, experiment_id: int) -> t.Experiment:
    """One experiment."""
    return experiment(row(conn, org_id, experiment_id), _folders.Tree(conn, org_id))


def list_experiments(
    conn: Connection, org_id: int, query: t.ListExperimentsQuery
) -> list[t.Experiment]:
    """The organization's experiments that match ``query``, newest first."""
    sql = _COLUMNS + "WHERE org_id=?"
    args: list[Any] = [org_id]
    for clause, value in (
        (" AND status=?", query.status),
        (" AND slug=?", query.slug),
        (" AND created_ms>=?", query.from_ms),
        (" AND created_ms<?", query.to_ms),
    ):
        if value is not None:
            sql += clause
            args.append(value)
    if query.search:
        sql += " AND (instr(lower(slug), ?) > 0 OR instr(lower(description), ?) > 0)"
        args += [query.search.lower()] * 2
    sql += " ORDER BY created_ms DESC, id DESC"
    if query.limit is not None:
        sql += " LIMIT ?"
        args.append(query.limit)
    tree = _folders.Tree(conn, org_id)
    return [experiment(found, tree) for found in conn.execute(sql, args).fetchall()]


def in_folder(conn: Connection, org_id: int, folder_id: int) -> t.FolderContentsResponse:
    """A folder, the folders directly under it and its experiments (by slug)."""
    _folders.row(conn, org_id, folder_id)
    tree = _folders.Tree(conn, org_id)
    rows = conn.execute(
        _COLUMNS + "WHERE org_id=? AND folder_id=? ORDER BY slug", (org_id, folder_id)
    ).fetchall()
    return t.FolderContentsResponse(
        folder=tree.folder(folder_id),
        folders=tree.children(folder_id),
        experiments=[experiment(found, tree) for found in rows],
    )


def check_free(conn: Connection, org_id: int, folder_id: int | None, slug: str) -> None:
    """Refuse a slug already taken in a folder (or at the top level)."""
    taken = conn.execute(
        "SELECT id FROM experiments WHERE org_id=? AND IFNULL(folder_id, 0)=? AND slug=?",
        (org_id, folder_id or 0, slug),
    ).fetchone()
    if taken is not None:
        where = "at the top level" if folder_id is None else f"in folder {folder_id}"
        raise ConflictError(f"an experiment with slug {slug!r} already exists {where} "
                            f"(id {taken[0]})")  # fmt: skip


def check_metadata(metadata: dict[str, Any], what: str = "metadata") -> None:
    """Refuse a NaN or infinity in a JSON object (JSON cannot carry one back)."""
    place = t.non_finite_path(metadata)
    if place is not None:
        raise InvalidRequestError(f"{what} must hold finite numbers only: {what}.{place} is not")


def create_experiment(conn: Connection, org_id: int, request: t.ExperimentCreate) -> t.Experiment:
    """A new experiment with status ``created``, its slug free in its folder."""
    check_metadata(request.metadata)
    folder_id = None
    if request.folder_id is not UNSET and request.folder_id is not None:
        folder_id = parse_id("folder", request.folder_id)
        _folders.row(conn, org_id, folder_id)
    check_free(conn, org_id, folder_id, request.slug)
    now = now_ms()
    cursor = conn.execute(
        "INSERT INTO experiments (org_id, folder_id, slug, description, metadata, status, "
        "created_ms, updated_ms) VALUES (?,?,?,?,?,'created',?,?)",
        (org_id, folder_id, request.slug, request.description, encode_json(request.metadata),
         now, now),
    )  # fmt: skip
    return get_experiment(conn, org_id, int(cursor.lastrowid or 0))


def set_status(
    conn: Connection,
    experiment_id: int,
    status: str,
    error: t.ExperimentStatusError | None = None,
    at_ms: int | None = None,
) -> None:
    """Move an experiment to ``running`` (started the first time), ``done`` or ``error``
    (done now, with the error's name and detail); ``at_ms`` is when (now by default)."""
    now = now_ms()
    at = now if at_ms is None else at_ms
    if status == "running":
        conn.execute(
            "UPDATE experiments SET status='running', started_ms=COALESCE(started_ms, ?), "
            "done_ms=NULL, error_name=NULL, error_detail=NULL, updated_ms=?, "
            "last_heartbeat_ms=? WHERE id=?",
            (at, now, now, experiment_id),
        )
        return
    name: str | None = None
    detail: str | None = None
    if status == "error":
        error = error or t.ExperimentStatusError()
        name, detail = error.name, error.detail
    conn.execute(
        "UPDATE experiments SET status=?, done_ms=?, started_ms=COALESCE(started_ms, ?), "
        "error_name=?, error_detail=?, updated_ms=?, last_heartbeat_ms=? WHERE id=?",
        (status, at, at, name, detail, now, now, experiment_id),
    )


def update_status(
    conn: Connection, org_id: int, experiment_id: int, update: t.ExperimentStatusUpdate
) -> t.Experiment:
    """The API's status update (see :func:`set_status`)."""
    row(conn, org_id, experiment_id)
    set_status(conn, experiment_id, update.status, update.error, update.timestamp_ms)
    return get_experiment(conn, org_id, experiment_id)


def move_experiment(
    conn: Connection, org_id: int, experiment_id: int, folder_id: str | None
) -> t.Experiment:
    """Move an experiment into another folder (the top level for None) where its slug is
    free."""
    found = row(conn, org_id, experiment_id)
    target = None if folder_id is None else parse_id("folder", folder_id)
    if target is not None:
        _folders.row(conn, org_id, target)
    if found[2] != target:
        check_free(conn, org_id, target, found[3])
        conn.execute(
            "UPDATE experiments SET folder_id=?, updated_ms=? WHERE id=?",
            (target, now_ms(), experiment_id),
        )
    return get_experiment(conn, org_id, experiment_id)


def merge_metadata(conn: Connection, experiment_id: int, metadata: dict[str, Any]) -> None:
    """Merge ``metadata`` into the experiment's (its keys replace those already there)."""
    if not metadata:
        return
    check_metadata(metadata)
    found = conn.execute("SELECT metadata FROM experiments WHERE id=?", (experiment_id,))
    merged = any_decoder.decode(found.fetchone()[0])
    merged.update(metadata)
    conn.execute(
        "UPDATE experiments SET metadata=?, updated_ms=? WHERE id=?",
        (encode_json(merged), now_ms(), experiment_id),
    )


def note_events(conn: Connection, experiment_id: int, events: bool) -> None:
    """Record that the experiment's producer was heard from now (and sent events)."""
    now = now_ms()
    if events:
        conn.execute(
            "UPDATE experiments SET last_event_ms=?, last_heartbeat_ms=? WHERE id=?",
            (now, now, experiment_id),
        )
    else:
        conn.execute("UPDATE experiments SET last_heartbeat_ms=? WHERE id=?", (now, experiment_id))


# -- annotations --------------------------------------------------------------------------


def create_annotation(
    conn: Connection, org_id: int, experiment_id: int, request: t.AnnotationCreate
) -> t.ExperimentAnnotationResponse:
    """A note on an experiment, now."""
    check_metadata(request.metadata)
    now_ns = now_ms() * 1_000_000
    row(conn, org_id, experiment_id)
    cursor = conn.execute(
        "INSERT INTO annotations (experiment_id, text, timestamp_ns, metadata, created_ns) "
        "VALUES (?,?,?,?,?)",
        (experiment_id, request.annotation, now_ns, encode_json(request.metadata), now_ns),
    )
    annotation = t.Annotation(
        id=str(cursor.lastrowid or 0),
        experiment_id=str(experiment_id),
        annotation=request.annotation,
        metadata=request.metadata,
        created_at_ms=now_ns // 1_000_000,
    )
    return t.ExperimentAnnotationResponse(
        experiment=get_experiment(conn, org_id, experiment_id), annotation=annotation
    )


def list_annotations(
    conn: Connection, org_id: int, experiment_id: int, query: t.ListAnnotationsQuery
) -> list[t.Annotation]:
    """An experiment's annotations made from ``from`` to before ``to`` (ms), oldest first."""
    row(conn, org_id, experiment_id)
    sql = "SELECT id, text, metadata, created_ns FROM annotations WHERE experiment_id=?"
    args: list[Any] = [experiment_id]
    if query.from_ms is not None:
        sql += " AND created_ns>=?"
        args.append(query.from_ms * 1_000_000)
    if query.to_ms is not None:
        sql += " AND created_ns<?"
        args.append(query.to_ms * 1_000_000)
    sql += " ORDER BY created_ns, id"
    if query.limit is not None:
        sql += " LIMIT ?"
        args.append(query.limit)
    return [
        t.Annotation(str(r[0]), str(experiment_id), r[1], any_decoder.decode(r[2]), r[3] // 10**6)
        for r in conn.execute(sql, args).fetchall()
    ]
