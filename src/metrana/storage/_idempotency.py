"""Idempotent requests: the first answer to an ``Idempotency-Key``, kept to be replayed."""

from __future__ import annotations

import time
from collections.abc import Callable

from ._base import ConflictError, InProgressError

__all__ = ["InProgressError", "forget_idempotency", "idempotent"]
from ._db import Connection


def idempotent(
    conn: Connection,
    scope: str,
    key: str,
    fingerprint: str,
    action: Callable[[], tuple[int, bytes]],
) -> tuple[int, bytes]:
    """Run ``action`` once per (scope, key) and record its answer; a repeated key answers the
    first answer again without acting. Call it inside a write transaction that ``action``
    joins, so that the action and its record commit together."""
    found = conn.execute(
        "SELECT fingerprint, status, body FROM idempotency WHERE scope=? AND key=?",
        (scope, key),
    ).fetchone()
    if found is not None:
        if found[0] != fingerprint:
            raise ConflictError(
                f"Idempotency-Key {key!r} was already used for a different request; "
                "generate a new key for each logical request"
            )
        return int(found[1]), bytes(found[2])
    status, body = action()
    conn.execute(
        "INSERT INTO idempotency (scope, key, fingerprint, status, body, created_ns) "
        "VALUES (?,?,?,?,?,?)",
        (scope, key, fingerprint, status, body, time.time_ns()),
    )
    return status, body


def forget_idempotency(conn: Connection, older_than_ns: int) -> int:
    """Drop idempotency records older than a cutoff; answer how many."""
    return conn.execute("DELETE FROM idempotency WHERE created_ns < ?", (older_than_ns,)).rowcount
