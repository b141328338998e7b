"""The dashboard's logins as rows: one-time login tokens and the sessions they open.

Both are random secrets handed to a browser once; the store keeps only their SHA-256 (as it
does for keys), whom they log in as (an organization, and the key that minted them) and when
they expire. Being rows, they outlive a server restart and every replica over the same
database sees them: a token is consumed by one ``DELETE … RETURNING``, so it opens one
session, whichever replica it reaches, however many reach it at once.
"""

from __future__ import annotations

import secrets

from ._base import Principal
from ._db import Connection
from ._keys import hash_secret

LOGIN_TOKEN_PREFIX = "mtl_"

__all__ = [
    "LOGIN_TOKEN_PREFIX",
    "close_session",
    "create_login_token",
    "open_session",
    "redeem_login_token",
    "session",
]


def _sweep(conn: Connection, now_ns: int) -> None:
    """Forget the expired tokens and sessions (done whenever one is made)."""
    conn.execute("DELETE FROM login_tokens WHERE expires_ns <= ?", (now_ns,))
    conn.execute("DELETE FROM dashboard_sessions WHERE expires_ns <= ?", (now_ns,))


def _insert(
    conn: Connection, table: str, secret: str, principal: Principal, expires_ns: int, now_ns: int
) -> None:
    """Keep the hash of a new token or cookie of ``principal`` (the expired rows go first)."""
    _sweep(conn, now_ns)
    conn.execute(
        f"INSERT INTO {table} (hash, org_id, key_id, key_name, created_ns, expires_ns) "
        "VALUES (?,?,?,?,?,?)",
        (hash_secret(secret), principal.org_id, principal.key_id, principal.key_name, now_ns,
         expires_ns),
    )  # fmt: skip


def create_login_token(conn: Connection, principal: Principal, expires_ns: int, now_ns: int) -> str:
    """A new one-time login token for ``principal``'s organization, valid until
    ``expires_ns``."""
    token = LOGIN_TOKEN_PREFIX + secrets.token_urlsafe(24)
    _insert(conn, "login_tokens", token, principal, expires_ns, now_ns)
    return token


def redeem_login_token(
    conn: Connection, token: str, session_expires_ns: int, now_ns: int
) -> tuple[str, Principal] | None:
    """Use up ``token`` and open a session (its cookie value and principal) if it was unused
    and unexpired; None otherwise (and the token is gone either way)."""
    found = conn.execute(
        "DELETE FROM login_tokens WHERE hash=? RETURNING org_id, key_id, key_name, expires_ns",
        (hash_secret(token),),
    ).fetchone()
    if found is None or found[3] <= now_ns:
        return None
    org = conn.execute("SELECT name FROM organizations WHERE id=?", (found[0],)).fetchone()
    principal = Principal("session", int(found[1]), found[2], int(found[0]), org[0])
    return open_session(conn, principal, session_expires_ns, now_ns), principal


def open_session(conn: Connection, principal: Principal, expires_ns: int, now_ns: int) -> str:
    """A new session of ``principal``'s organization until ``expires_ns``: its cookie
    value."""
    cookie = secrets.token_urlsafe(32)
    _insert(conn, "dashboard_sessions", cookie, principal, expires_ns, now_ns)
    return cookie


def session(conn: Connection, cookie: str, now_ns: int) -> tuple[Principal, int] | None:
    """The principal (of kind ``"session"``) of a live session's cookie value and when the
    session expires; None for an unknown or expired one."""
    found = conn.execute(
        "SELECT s.key_id, s.key_name, o.id, o.name, s.expires_ns FROM dashboard_sessions s "
        "JOIN organizations o ON o.id = s.org_id WHERE s.hash=? AND s.expires_ns > ?",
        (hash_secret(cookie), now_ns),
    ).fetchone()
    if found is None:
        return None
    return Principal("session", int(found[0]), found[1], int(found[2]), found[3]), int(found[4])


def close_session(conn: Connection, cookie: str) -> None:
    """End a session (logout)."""
    conn.execute("DELETE FROM dashboard_sessions WHERE hash=?", (hash_secret(cookie),))
