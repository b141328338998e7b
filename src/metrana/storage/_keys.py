"""The keys that open the server: an organization's API keys, and ingestion keys scoped to one
experiment.

A key is returned once, when it is created; the store keeps its first 12 characters (to name
it) and a hash of it (to recognise it).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from ..api import _types as t
from . import _experiments, _folders
from ._base import ApiKeyInfo, InvalidRequestError, Principal
from ._db import Connection, require_row

API_KEY_PREFIX = "mtr_"
INGESTION_KEY_PREFIX = "mti_"

_INGESTION_KEY_COLUMNS = (
    "SELECT k.id, k.experiment_id, k.name, k.prefix, k.created_ns, k.revoked_ns, "
    "k.expires_ns, k.last_used_ns "
    "FROM ingestion_keys k JOIN experiments e ON e.id = k.experiment_id "
    "WHERE e.org_id=? "
)
# A key's last use is written at most this often: not a write per request.
LAST_USED_RESOLUTION_NS = 60 * 10**9


def _ms(ns: int | None) -> int | None:
    return None if ns is None else ns // 1_000_000


def _ingestion_key(row: tuple[Any, ...]) -> t.IngestionKey:
    key_id, experiment_id, name, prefix, created_ns, revoked_ns, expires_ns, used_ns = row
    return t.IngestionKey(
        id=str(key_id),
        experiment_id=str(experiment_id),
        name=name,
        created_at_ms=created_ns // 1_000_000,
        expires_at_ms=expires_ns // 1_000_000,
        revoked_at_ms=_ms(revoked_ns),
        last_used_at_ms=_ms(used_ns),
        prefix=prefix,
    )


def hash_secret(secret: str) -> str:
    """Keys are 256-bit random tokens, so one SHA-256 is enough to store them safely."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_key(
    conn: Connection, table: str, owner: str, owner_id: int, name: str, prefix: str
) -> tuple[int, str, int]:
    """Store a new key in ``table`` for ``owner`` = ``owner_id``; answer its id, its secret
    and its creation time."""
    secret = prefix + secrets.token_urlsafe(32)
    now = time.time_ns()
    cursor = conn.execute(
        f"INSERT INTO {table} ({owner}, name, prefix, hash, created_ns) VALUES (?,?,?,?,?)",
        (owner_id, name, secret[:12], hash_secret(secret), now),
    )
    return int(cursor.lastrowid or 0), secret, now


def create_api_key(conn: Connection, organization: str, name: str) -> tuple[ApiKeyInfo, str]:
    """A new API key of an organization (created if needed), with its secret."""
    org_id = _folders.organization(conn, organization)
    key_id, secret, now = _new_key(conn, "api_keys", "org_id", org_id, name, API_KEY_PREFIX)
    return ApiKeyInfo(key_id, organization, name, secret[:12], now, revoked=False), secret


def list_api_keys(conn: Connection) -> list[ApiKeyInfo]:
    """Every API key of every organization, revoked ones included, oldest first."""
    rows = conn.execute(
        "SELECT k.id, o.name, k.name, k.prefix, k.created_ns, k.revoked_ns "
        "FROM api_keys k JOIN organizations o ON o.id = k.org_id ORDER BY k.id"
    ).fetchall()
    return [ApiKeyInfo(r[0], r[1], r[2], r[3], r[4], r[5] is not None) for r in rows]


def revoke_api_key(conn: Connection, key: str) -> int:
    """Revoke an API key given by id or by its prefix (revoking twice keeps the first time);
    answer its id."""
    column = "id" if key.isdigit() else "prefix"
    found = require_row(
        conn,
        f"SELECT id FROM api_keys WHERE {column}=?",
        (key,),
        f"no API key with {column} {key!r}",
    )
    conn.execute(
        "UPDATE api_keys SET revoked_ns=COALESCE(revoked_ns, ?) WHERE id=?",
        (time.time_ns(), found[0]),
    )
    # the dashboard logins the key opened end with it
    conn.execute("DELETE FROM login_tokens WHERE key_id=?", (found[0],))
    conn.execute("DELETE FROM dashboard_sessions WHERE key_id=?", (found[0],))
    return int(found[0])


def authenticate(conn: Connection, secret: str, now_ns: int) -> tuple[Principal | None, bool]:
    """The holder of a key (None when it is unknown, revoked or expired), and whether its last
    use is due to be written (:func:`note_use`)."""
    digest = hash_secret(secret)
    found = conn.execute(
        "SELECT k.id, k.name, o.id, o.name FROM api_keys k "
        "JOIN organizations o ON o.id = k.org_id "
        "WHERE k.hash=? AND k.revoked_ns IS NULL",
        (digest,),
    ).fetchone()
    if found is not None:
        return Principal("api", found[0], found[1], found[2], found[3]), False
    found = conn.execute(
        "SELECT k.id, k.name, o.id, o.name, e.id, k.last_used_ns FROM ingestion_keys k "
        "JOIN experiments e ON e.id = k.experiment_id "
        "JOIN organizations o ON o.id = e.org_id "
        "WHERE k.hash=? AND k.revoked_ns IS NULL AND k.expires_ns > ?",
        (digest, now_ns),
    ).fetchone()
    if found is None:
        return None, False
    principal = Principal("ingestion", found[0], found[1], found[2], found[3], found[4])
    return principal, found[5] is None or now_ns - found[5] >= LAST_USED_RESOLUTION_NS


def note_use(conn: Connection, key_id: int, now_ns: int) -> None:
    """Record that an ingestion key was used now."""
    conn.execute("UPDATE ingestion_keys SET last_used_ns=? WHERE id=?", (now_ns, key_id))


def create_ingestion_key(
    conn: Connection, org_id: int, experiment_id: int, name: str, ttl_ms: int
) -> t.IngestionKeyCreateResponse:
    """A new key that may only write to one experiment for ``ttl_ms``, with its token."""
    if problem := t.ttl_problem(ttl_ms):
        raise InvalidRequestError(problem)
    _experiments.row(conn, org_id, experiment_id)
    key_id, secret, now = _new_key(
        conn, "ingestion_keys", "experiment_id", experiment_id, name, INGESTION_KEY_PREFIX
    )
    expires_ns = now + ttl_ms * 1_000_000
    conn.execute("UPDATE ingestion_keys SET expires_ns=? WHERE id=?", (expires_ns, key_id))
    row = (key_id, experiment_id, name, secret[:12], now, None, expires_ns, None)
    return t.IngestionKeyCreateResponse(key=_ingestion_key(row), token=secret)


def list_ingestion_keys(conn: Connection, org_id: int, experiment_id: int) -> list[t.IngestionKey]:
    """An experiment's ingestion keys, revoked ones included, oldest first."""
    _experiments.row(conn, org_id, experiment_id)
    rows = conn.execute(
        _INGESTION_KEY_COLUMNS + "AND k.experiment_id=? ORDER BY k.id",
        (org_id, experiment_id),
    ).fetchall()
    return [_ingestion_key(tuple(r)) for r in rows]


def revoke_ingestion_key(
    conn: Connection, org_id: int, experiment_id: int, key_id: int
) -> t.IngestionKey:
    """Revoke an ingestion key of an experiment (revoking twice keeps the first time)."""
    found = require_row(
        conn,
        _INGESTION_KEY_COLUMNS + "AND k.experiment_id=? AND k.id=?",
        (org_id, experiment_id, key_id),
        f"no ingestion key {key_id} of experiment {experiment_id} in this organization",
    )
    revoked_ns = found[5] or time.time_ns()
    conn.execute("UPDATE ingestion_keys SET revoked_ns=? WHERE id=?", (revoked_ns, key_id))
    return _ingestion_key((*tuple(found)[:5], revoked_ns, *tuple(found)[6:]))
