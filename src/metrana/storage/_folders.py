"""Workspaces and their folder trees.

A folder's name is unique among its siblings; a top-level folder has no parent. Functions that
take a ``workspace_id`` only see that workspace's folders: an id from another workspace reads
as not found.
"""

from __future__ import annotations

import time
from typing import Any

from ..api import _types as t
from ._base import ConflictError
from ._db import Connection, check_name, require_row

_COLUMNS = "SELECT id, workspace_id, parent_id, name, description, created_ns FROM folders "


def workspace(conn: Connection, name: str) -> int:
    """The id of workspace ``name``, created if it does not exist."""
    row = conn.execute("SELECT id FROM workspaces WHERE name=?", (name,)).fetchone()
    if row is not None:
        return int(row[0])
    cursor = conn.execute(
        "INSERT INTO workspaces (name, created_ns) VALUES (?, ?)", (name, time.time_ns())
    )
    return int(cursor.lastrowid or 0)


def workspace_names(conn: Connection) -> list[str]:
    """Every workspace's name, oldest first."""
    return [str(r[0]) for r in conn.execute("SELECT name FROM workspaces ORDER BY id")]


def row(conn: Connection, workspace_id: int, folder_id: int) -> Any:
    """The folder's row (the columns of ``_COLUMNS``); NotFoundError outside the workspace."""
    return require_row(
        conn,
        _COLUMNS + "WHERE id=? AND workspace_id=?",
        (folder_id, workspace_id),
        f"no folder {folder_id} in this workspace",
    )


def _named(conn: Connection, workspace_id: int, parent_id: int | None, name: str) -> int | None:
    """The id of the folder called ``name`` under ``parent_id``, if there is one."""
    found = conn.execute(
        "SELECT id FROM folders WHERE workspace_id=? AND IFNULL(parent_id, 0)=? AND name=?",
        (workspace_id, parent_id or 0, name),
    ).fetchone()
    return None if found is None else int(found[0])


def ensure(conn: Connection, workspace_id: int, parent_id: int | None, name: str) -> int:
    """The id of the folder called ``name`` under ``parent_id``, created if it does not
    exist (how a run's project and experiment name become folders)."""
    folder_id = _named(conn, workspace_id, parent_id, name)
    if folder_id is not None:
        return folder_id
    cursor = conn.execute(
        "INSERT INTO folders (workspace_id, parent_id, name, created_ns) VALUES (?,?,?,?)",
        (workspace_id, parent_id, name, time.time_ns()),
    )
    return int(cursor.lastrowid or 0)


def _check_free(conn: Connection, workspace_id: int, parent_id: int | None, name: str) -> None:
    check_name("folder name", name)
    taken = _named(conn, workspace_id, parent_id, name)
    if taken is not None:
        raise ConflictError(f"a folder named {name!r} already exists there (id {taken})")


def _folder(conn: Connection, found: Any) -> t.Folder:
    path = [str(found[3])]
    parent = found[2]
    while parent is not None:
        name, parent = conn.execute(
            "SELECT name, parent_id FROM folders WHERE id=?", (parent,)
        ).fetchone()
        path.insert(0, str(name))
    return t.Folder(
        id=found[0],
        workspace_id=found[1],
        parent_id=found[2],
        name=found[3],
        description=found[4],
        path=path,
        created_ns=found[5],
    )


def list_folders(conn: Connection, workspace_id: int, parent_id: int | None) -> list[t.Folder]:
    """The folders directly under ``parent_id`` (the top level when None), by name."""
    if parent_id is not None:
        row(conn, workspace_id, parent_id)
    rows = conn.execute(
        _COLUMNS + "WHERE workspace_id=? AND IFNULL(parent_id, 0)=? ORDER BY name",
        (workspace_id, parent_id or 0),
    ).fetchall()
    return [_folder(conn, found) for found in rows]


def get_folder(conn: Connection, workspace_id: int, folder_id: int) -> t.Folder:
    """One folder, with its path from the top."""
    return _folder(conn, row(conn, workspace_id, folder_id))


def create_folder(conn: Connection, workspace_id: int, request: t.FolderCreate) -> t.Folder:
    """A new folder; its parent must exist and have no child of the same name."""
    if request.parent_id is not None:
        row(conn, workspace_id, request.parent_id)
    _check_free(conn, workspace_id, request.parent_id, request.name)
    cursor = conn.execute(
        "INSERT INTO folders (workspace_id, parent_id, name, description, created_ns) "
        "VALUES (?,?,?,?,?)",
        (workspace_id, request.parent_id, request.name, request.description, time.time_ns()),
    )
    return get_folder(conn, workspace_id, int(cursor.lastrowid or 0))


def patch_folder(
    conn: Connection, workspace_id: int, folder_id: int, patch: t.FolderPatch
) -> t.Folder:
    """Change the fields of ``patch`` that are set (the description)."""
    row(conn, workspace_id, folder_id)
    if patch.description is not None:
        conn.execute("UPDATE folders SET description=? WHERE id=?", (patch.description, folder_id))
    return get_folder(conn, workspace_id, folder_id)


def rename_folder(conn: Connection, workspace_id: int, folder_id: int, name: str) -> t.Folder:
    """Rename a folder; no sibling may carry the new name."""
    found = row(conn, workspace_id, folder_id)
    if found[3] != name:
        _check_free(conn, workspace_id, found[2], name)
        conn.execute("UPDATE folders SET name=? WHERE id=?", (name, folder_id))
    return get_folder(conn, workspace_id, folder_id)


def move_folder(
    conn: Connection, workspace_id: int, folder_id: int, parent_id: int | None
) -> t.Folder:
    """Move a folder under ``parent_id`` (the top level when None), never into its own
    subtree."""
    found = row(conn, workspace_id, folder_id)
    ancestor = parent_id
    while ancestor is not None:
        if ancestor == folder_id:
            raise ConflictError(
                f"cannot move folder {folder_id} into itself or one of its sub-folders"
            )
        ancestor = row(conn, workspace_id, ancestor)[2]
    if found[2] != parent_id:
        _check_free(conn, workspace_id, parent_id, found[3])
        conn.execute("UPDATE folders SET parent_id=? WHERE id=?", (parent_id, folder_id))
    return get_folder(conn, workspace_id, folder_id)


def subtree(conn: Connection, folder_id: int) -> list[int]:
    """The ids of a folder and of every folder below it."""
    return [
        int(r[0])
        for r in conn.execute(
            "WITH RECURSIVE sub(id) AS (SELECT ? UNION ALL "
            "SELECT f.id FROM folders f JOIN sub ON f.parent_id = sub.id) SELECT id FROM sub",
            (folder_id,),
        )
    ]
