"""Dashboard logins: one-time login tokens exchanged for session cookies.

``metrana serve`` prints a login URL carrying a token (as Jupyter does), and
``POST /api/v1/auth/login-tokens`` mints another with an API key. Opening the URL exchanges the
token, once, for two cookies: ``metrana_session`` (HttpOnly, SameSite=Strict: scripts cannot
read it and other sites cannot send it) and ``metrana_csrf`` (readable by the page). A request
that carries the session cookie instead of an ``Authorization`` header is authenticated as
the organization the token was minted for (a principal of kind ``"session"``); one that
changes anything must also echo the CSRF token in the ``X-Metrana-CSRF`` header. The token
then leaves the address bar (the login answers with a redirect), and no key is in a URL.

Tokens and sessions are rows of the store (``login_tokens``, ``dashboard_sessions``; see
``storage._logins``), as their SHA-256 only: a server restart keeps browsers logged in, and
stateless replicas over one database share them (a token works once, on whichever replica).
The CSRF token is derived from the session's cookie, so it needs no row of its own.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable

import msgspec
from starlette.requests import Request

from ..storage import Principal, Store
from ._errors import ApiError

LOGIN_PATH = "/login"
LOGIN_TOKEN_TTL_MS = 24 * 3600 * 1000
SESSION_TTL_NS = 7 * 24 * 3600 * 10**9
SESSION_COOKIE = "metrana_session"
CSRF_COOKIE = "metrana_csrf"
CSRF_HEADER = "x-metrana-csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def login_url(origin: str, token: str) -> str:
    """The address that logs a browser in with ``token``."""
    return f"{origin}{LOGIN_PATH}?token={token}"


def csrf_token(cookie: str) -> str:
    """The CSRF token of a session: derived from its cookie value (which the page cannot
    read), so nothing stored reveals it and every replica computes the same."""
    digest = hashlib.blake2b(cookie.encode(), key=b"metrana-csrf", digest_size=18).digest()
    return base64.urlsafe_b64encode(digest).decode()


class Session(msgspec.Struct):
    """A live session: whose it is (a ``"session"`` principal), its CSRF token, and when it
    expires (Unix ns)."""

    principal: Principal
    csrf: str
    expires_ns: int


class Sessions:
    """The login tokens and sessions of a store (thread-safe; the rows are the state)."""

    def __init__(self, store: Store, clock: Callable[[], int] = time.time_ns) -> None:
        self._store = store
        self._clock = clock

    def mint(self, principal: Principal, ttl_ms: int = LOGIN_TOKEN_TTL_MS) -> tuple[str, int]:
        """A new one-time login token for ``principal``'s organization, and when it expires
        (Unix ms)."""
        now = self._clock()
        expires_ns = now + ttl_ms * 1_000_000
        return self._store.create_login_token(principal, expires_ns, now), expires_ns // 1_000_000

    def redeem(self, token: str) -> tuple[str, Session] | None:
        """A new session (its cookie value and itself) for an unused, unexpired token, which
        is used up; None otherwise."""
        if not token:
            return None
        now = self._clock()
        found = self._store.redeem_login_token(token, now + SESSION_TTL_NS, now)
        if found is None:
            return None
        cookie, principal = found
        return cookie, Session(principal, csrf_token(cookie), now + SESSION_TTL_NS)

    def open(self, principal: Principal) -> tuple[str, Session]:
        """A new session of ``principal`` (made a ``"session"`` principal)."""
        now = self._clock()
        cookie = self._store.open_dashboard_session(principal, now + SESSION_TTL_NS, now)
        as_session = msgspec.structs.replace(principal, kind="session", experiment_id=None)
        return cookie, Session(as_session, csrf_token(cookie), now + SESSION_TTL_NS)

    def close(self, cookie: str) -> None:
        """End a session (logout)."""
        if cookie:
            self._store.close_dashboard_session(cookie)

    def lookup(self, cookie: str) -> Session | None:
        """The live session of a cookie value, or None."""
        if not cookie:
            return None
        found = self._store.dashboard_session(cookie, self._clock())
        return None if found is None else Session(found[0], csrf_token(cookie), found[1])

    def authenticate(self, request: Request) -> Principal:
        """The principal of a request's session cookie; 401 without a live session, 403 for
        a write without the session's CSRF token."""
        session = self.lookup(request.cookies.get(SESSION_COOKIE, ""))
        if session is None:
            raise ApiError(
                401,
                "unauthorized",
                "no session or it expired: open the login URL that `metrana serve` printed, "
                "or send 'Authorization: Bearer KEY'",
            )
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not secrets.compare_digest(sent.encode(), session.csrf.encode()):
                raise ApiError(
                    403,
                    "forbidden",
                    f"a write with a session cookie needs the {CSRF_HEADER} header",
                )
        return session.principal


__all__ = ["LOGIN_PATH", "Session", "Sessions", "csrf_token", "login_url"]
