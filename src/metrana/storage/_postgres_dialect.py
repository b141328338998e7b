"""SQLite's dialect, as the resource modules write it, spoken to PostgreSQL.

:class:`PgConnection` wraps a psycopg connection as the :class:`~._db.Connection` the modules
take, and rewrites each statement once (cached):

* ``?`` placeholders become ``%s`` (and a literal ``%`` becomes ``%%``);
* ``IFNULL(`` becomes ``COALESCE(``, ``instr(`` becomes ``strpos(``;
* ``INSERT OR IGNORE INTO`` becomes ``INSERT INTO … ON CONFLICT DO NOTHING``;
* an ``INSERT`` into a table with an ``id`` gets ``RETURNING id``, read as ``lastrowid``;
* the ``FOR_UPDATE`` marker becomes ``FOR UPDATE``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from ._db import FOR_UPDATE

__all__ = ["PgConnection", "translate"]

_ID_TABLES = frozenset(
    {"organizations", "folders", "experiments", "series", "api_keys", "ingestion_keys",
     "annotations"}
)  # fmt: skip
_INSERT = re.compile(r"\s*INSERT\s+(OR\s+IGNORE\s+)?INTO\s+(\w+)", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)
def translate(sql: str, with_parameters: bool = True) -> tuple[str, bool]:
    """The PostgreSQL text of a statement, and whether it answers the new row's id."""
    returning = False
    insert = _INSERT.match(sql)
    if insert is not None:
        ignore, table = insert.groups()
        if ignore:
            sql = sql[: insert.start(1)] + sql[insert.end(1) :] + " ON CONFLICT DO NOTHING"
        if table in _ID_TABLES and "RETURNING" not in sql.upper():
            sql += " RETURNING id"
            returning = True
    sql = sql.replace("IFNULL(", "COALESCE(").replace("instr(", "strpos(")
    sql = sql.replace(FOR_UPDATE, " FOR UPDATE")
    if with_parameters:
        sql = sql.replace("%", "%%").replace("?", "%s")
    return sql, returning


class PgCursor:
    """What a statement did, as the modules read it (``lastrowid`` from ``RETURNING id``)."""

    def __init__(self, cursor: psycopg.Cursor[Any], returning: bool) -> None:
        self._cursor = cursor
        self.lastrowid: int | None = None
        if returning:
            row = cursor.fetchone()
            self.lastrowid = None if row is None else int(row[0])

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


class PgConnection:
    """A psycopg connection that takes the modules' SQLite-dialect statements."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.raw = connection

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> PgCursor:
        """Run one statement (translated) with its parameters."""
        text, returning = translate(sql, bool(parameters))
        cursor = self.raw.execute(text, parameters or None)
        return PgCursor(cursor, returning)
