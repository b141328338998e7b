"""Organizations and their folder trees.

A folder's name is unique among its siblings; a top-level folder has no parent. Its
``path_name`` is the names from the top, joined by ``/`` (``workspace/project``), which is
how ``metrana.init()`` addresses a run's folder and how ``list_folders(path=...)`` finds one.
Functions that take an ``org_id`` only see that organization's folders: an id from another
reads as not found.
"""

from __future__ import annotations

import time
from typing import Any

from msgspec import UNSET

from ..api import _types as t
from ._base import ConflictError, InvalidRequestError
from ._db import Connection, parse_id, require_row

_COLUMNS = "SELECT id, org_id, parent_id, name FROM folders "


def organization(conn: Connection, name: str) -> int:
    """The id of organization ``name``, created if it does not exist."""
    row = conn.execute("SELECT id FROM organizations WHERE name=?", (name,)).fetchone()
    if row is not None:
        return int(row[0])
    cursor = conn.execute(
        "INSERT INTO organizations (name, created_ns) VALUES (?, ?)", (name, time.time_ns())
    )
    return int(cursor.lastrowid or 0)


def organization_names(conn: Connection) -> list[str]:
    """Every organization's name, oldest first."""
    return [str(r[0]) for r in conn.execute("SELECT name FROM organizations ORDER BY id")]


def row(conn: Connection, org_id: int, folder_id: int) -> Any:
    """The folder's row (the columns of ``_COLUMNS``); NotFoundError outside the
    organization."""
    return require_row(
        conn,
        _COLUMNS + "WHERE id=? AND org_id=?",
        (folder_id, org_id),
        f"no folder {folder_id} in this organization",
    )


def _named(conn: Connection, org_id: int, parent_id: int | None, name: str) -> int | None:
    """The id of the folder called ``name`` under ``parent_id``, if there is one."""
    found = conn.execute(
        "SELECT id FROM folders WHERE org_id=? AND IFNULL(parent_id, 0)=? AND name=?",
        (org_id, parent_id or 0, name),
    ).fetchone()
    return None if found is None else int(found[0])


def ensure_path(conn: Connection, org_id: int, names: list[str]) -> int:
    """The id of the folder at path ``names``, created with its missing ancestors (how a run's
    workspace, project and experiment name become folders)."""
    parent: int | None = None
    for name in names:
        folder_id = _named(conn, org_id, parent, name)
        if folder_id is None:
            cursor = conn.execute(
                "INSERT INTO folders (org_id, parent_id, name, created_ns) VALUES (?,?,?,?)",
                (org_id, parent, name, time.time_ns()),
            )
            folder_id = int(cursor.lastrowid or 0)
        parent = folder_id
    assert parent is not None, "a folder path has at least one name"
    return parent


def find_path(conn: Connection, org_id: int, path: str) -> int | None:
    """The id of the folder whose path_name is ``path`` (slashes around it ignored), or
    None."""
    parent: int | None = None
    for name in path.strip("/").split("/"):
        parent = _named(conn, org_id, parent, name)
        if parent is None:
            return None
    return parent


def _check_free(conn: Connection, org_id: int, parent_id: int | None, name: str) -> None:
    if "/" in name:
        raise InvalidRequestError(f"a folder name cannot contain '/': {name!r}")
    taken = _named(conn, org_id, parent_id, name)
    if taken is not None:
        raise ConflictError(f"a folder named {name!r} already exists there (id {taken})")


class Tree:
    """Folders by id, read once, to build many :class:`~metrana.api._types.Folder` answers."""

    def __init__(self, conn: Connection, org_id: int) -> None:
        self.org_id = org_id
        self.nodes: dict[int, tuple[int | None, str]] = {
            int(r[0]): (r[2], str(r[3]))
            for r in conn.execute(_COLUMNS + "WHERE org_id=?", (org_id,))
        }

    def folder(self, folder_id: int) -> t.Folder:
        """One folder, with the ids and names of its ancestors."""
        ids: list[str] = []
        names: list[str] = []
        at: int | None = folder_id
        while at is not None:
            parent, name = self.nodes[at]
            ids.insert(0, str(at))
            names.insert(0, name)
            at = parent
        return t.Folder(
            folder_id=ids[-1],
            org_id=str(self.org_id),
            name=names[-1],
            parent_id_path=ids[:-1],
            path_name="/".join(names),
        )

    def children(self, parent_id: int | None) -> list[t.Folder]:
        """The folders directly under ``parent_id`` (the top level when None), by name."""
        found = [i for i, (parent, _) in self.nodes.items() if parent == parent_id]
        return [self.folder(i) for i in sorted(found, key=lambda i: self.nodes[i][1])]


def get_folder(conn: Connection, org_id: int, folder_id: int) -> t.Folder:
    """One folder, with its path from the top."""
    row(conn, org_id, folder_id)
    return Tree(conn, org_id).folder(folder_id)


def list_folders(conn: Connection, org_id: int, path: str | None) -> list[t.Folder]:
    """Every folder of the organization by path_name, or only the one at ``path``."""
    tree = Tree(conn, org_id)
    if path is not None:
        found = find_path(conn, org_id, path)
        return [] if found is None else [tree.folder(found)]
    return sorted((tree.folder(i) for i in tree.nodes), key=lambda f: f.path_name)


def create_folder(conn: Connection, org_id: int, request: t.FolderCreate) -> t.Folder:
    """A new folder; its parent must exist and have no child of the same name."""
    parent = None if request.parent_id is None else parse_id("folder", request.parent_id)
    if parent is not None:
        row(conn, org_id, parent)
    _check_free(conn, org_id, parent, request.name)
    cursor = conn.execute(
        "INSERT INTO folders (org_id, parent_id, name, created_ns) VALUES (?,?,?,?)",
        (org_id, parent, request.name, time.time_ns()),
    )
    return get_folder(conn, org_id, int(cursor.lastrowid or 0))


def patch_folder(conn: Connection, org_id: int, folder_id: int, patch: t.FolderPatch) -> t.Folder:
    """Rename and/or move a folder: no sibling may carry its name where it ends up, and it
    never moves into its own subtree."""
    if patch.name is UNSET and patch.parent_id is UNSET:
        raise InvalidRequestError("patch_folder needs name or parent_id (or both)")
    found = row(conn, org_id, folder_id)
    name = found[3] if patch.name is UNSET else patch.name
    parent: int | None = found[2]
    if patch.parent_id is not UNSET:
        parent = None if patch.parent_id is None else parse_id("folder", patch.parent_id)
        ancestor = parent
        while ancestor is not None:
            if ancestor == folder_id:
                raise ConflictError(
                    f"cannot move folder {folder_id} into itself or one of its sub-folders"
                )
            ancestor = row(conn, org_id, ancestor)[2]
    if (name, parent) != (found[3], found[2]):
        _check_free(conn, org_id, parent, name)
        conn.execute("UPDATE folders SET name=?, parent_id=? WHERE id=?", (name, parent, folder_id))
    return get_folder(conn, org_id, folder_id)
