"""Which engine a store location names: a ``postgresql://`` URL, else a SQLite file."""

from __future__ import annotations

from pathlib import Path

from ._store import Store

__all__ = ["is_database_url", "open_store"]

_SCHEMES = ("postgresql://", "postgres://")


def is_database_url(location: str) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a SQLite file."""
    return location.startswith(_SCHEMES)


def open_store(location: str | Path) -> Store:
    """The store at ``location``: PostgreSQL for a ``postgresql://…`` URL (psycopg needed:
    ``pip install 'metrana[postgresql]'``), else the SQLite file at that path."""
    text = str(location)
    if is_database_url(text):
        from ._postgres import PostgresStore

        return PostgresStore(text)
    from ._sqlite import SqliteStore

    return SqliteStore(text)
