"""Dashboard logins: one-time login tokens exchanged for session cookies.

``metrana serve`` prints a login URL carrying a token (as Jupyter does), and
``POST /api/v1/auth/login-tokens`` mints another with an API key. Opening the URL exchanges the
token, once, for two cookies: ``metrana_session`` (HttpOnly, SameSite=Strict: scripts cannot
read it and other sites cannot send it) and ``metrana_csrf`` (readable by the page). A request
that carries the session cookie instead of an ``Authorization`` header is authenticated as
the organization the token was minted for (a principal of kind ``"session"``); one that
changes anything must also echo the CSRF token in the ``X-Metrana-CSRF`` header. The token
then leaves the address bar (the login answers with a redirect), and no key is in a URL.

Tokens and sessions live in this server process's memory, as their hashes: a restart logs
every browser out (``metrana serve`` prints a new URL), and replicas do not share them.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable

import msgspec
from starlette.requests import Request

from ..storage import Principal
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


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Session(msgspec.Struct):
    principal: Principal
    csrf: str
    expires_ns: int


class Sessions:
    """The login tokens and sessions of one server process (thread-safe)."""

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[Principal, int]] = {}  # hash -> (whose, expires ns)
        self._sessions: dict[str, Session] = {}  # hash of the cookie -> session

    def mint(self, principal: Principal, ttl_ms: int = LOGIN_TOKEN_TTL_MS) -> tuple[str, int]:
        """A new one-time login token for ``principal``'s organization, and when it expires
        (Unix ms)."""
        token = "mtl_" + secrets.token_urlsafe(24)
        expires_ns = self._clock() + ttl_ms * 1_000_000
        as_session = msgspec.structs.replace(principal, kind="session")
        with self._lock:
            self._sweep()
            self._tokens[_digest(token)] = (as_session, expires_ns)
        return token, expires_ns // 1_000_000

    def redeem(self, token: str) -> tuple[str, Session] | None:
        """A new session (its cookie value and itself) for an unused, unexpired token, which
        is used up; None otherwise."""
        with self._lock:
            found = self._tokens.pop(_digest(token), None)
            if found is None or found[1] <= self._clock():
                return None
        return self.open(found[0])

    def open(self, principal: Principal) -> tuple[str, Session]:
        """A new session of ``principal`` (made a ``"session"`` principal)."""
        cookie = secrets.token_urlsafe(32)
        session = Session(
            msgspec.structs.replace(principal, kind="session"),
            secrets.token_urlsafe(24),
            self._clock() + SESSION_TTL_NS,
        )
        with self._lock:
            self._sessions[_digest(cookie)] = session
        return cookie, session

    def close(self, cookie: str) -> None:
        """End a session (logout)."""
        with self._lock:
            self._sessions.pop(_digest(cookie), None)

    def lookup(self, cookie: str) -> Session | None:
        """The live session of a cookie value, or None."""
        with self._lock:
            session = self._sessions.get(_digest(cookie))
            if session is not None and session.expires_ns <= self._clock():
                del self._sessions[_digest(cookie)]
                return None
            return session

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

    def _sweep(self) -> None:
        now = self._clock()
        for key in [k for k, (_, expires) in self._tokens.items() if expires <= now]:
            del self._tokens[key]
        for key in [k for k, s in self._sessions.items() if s.expires_ns <= now]:
            del self._sessions[key]


__all__ = ["LOGIN_PATH", "Session", "Sessions", "login_url"]
