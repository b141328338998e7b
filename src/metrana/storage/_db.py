"""What the resource modules share: the connection an engine hands them, and small helpers.

Each resource module (``_folders``, ``_experiments``, ``_keys``, ...) is plain functions over a
:class:`Connection`: the engine opens the transaction (or the read) and passes the connection
in. An engine adds only how it connects, its transactions and its schema.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import msgspec

from ._base import InvalidRequestError, NotFoundError

_json_encoder = msgspec.json.Encoder(order="sorted")
any_decoder = msgspec.json.Decoder(dict[str, Any])
labels_decoder = msgspec.json.Decoder(dict[str, str])
# Appended to a SELECT of one row that must stay locked until the transaction ends: a comment
# to SQLite (a write transaction there excludes every other), ``FOR UPDATE`` to PostgreSQL.
FOR_UPDATE = " /*FOR UPDATE*/"


class Cursor(Protocol):
    """The result of :meth:`Connection.execute`: rows, and what a write did."""

    @property
    def lastrowid(self) -> int | None: ...

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """The part of a DB-API connection the resource modules use (``sqlite3.Connection`` is
    one). Their statements are written in SQLite's dialect (``?`` placeholders, ``IFNULL``,
    ``INSERT OR IGNORE``, ``instr``, ``lastrowid``): an engine with another dialect
    translates them in the connection it hands over (``_postgres_dialect``), or the module
    grows a variant. :data:`FOR_UPDATE` marks a row lock."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...


def require_row(conn: Connection, sql: str, parameters: Sequence[Any], missing: str) -> Any:
    """The first row of a query; NotFoundError(``missing``) when there is none."""
    found = conn.execute(sql, parameters).fetchone()
    if found is None:
        raise NotFoundError(missing)
    return found


def and_equal(sql: str, parameters: Sequence[Any], **columns: object) -> tuple[str, list[Any]]:
    """``sql`` narrowed by ``AND column=?`` for each of ``columns`` whose value is not None,
    and their values after ``parameters``."""
    values = list(parameters)
    for column, value in columns.items():
        if value is not None:
            sql += f" AND {column}=?"
            values.append(value)
    return sql, values


def check_name(what: str, name: str) -> None:
    """Raise InvalidRequestError unless ``name`` has 1 to 256 characters."""
    if not name or len(name) > 256:
        raise InvalidRequestError(f"{what} must be 1-256 characters, got {name!r}")


def encode_json(value: object) -> str:
    """JSON text with sorted keys, as metadata and labels are stored."""
    return _json_encoder.encode(value).decode()


def parse_id(kind: str, text: str) -> int:
    """The integer behind a string id of the API (``"12"``); a text that is none reads as not
    found."""
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise NotFoundError(f"no {kind} {text!r}")
    return int(text)


def now_ms() -> int:
    """The time in Unix milliseconds."""
    return time.time_ns() // 1_000_000
