"""The dashboard's routes: its page and static files (``static/``: plain ES modules, CSS and
the bundled uPlot), the login that exchanges a one-time token for a session, and logout.

The page is one HTML document for every dashboard address (``/``, ``/experiments/{id}``,
``/compare``); its scripts read the REST API with the session cookie (see ``_sessions``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..storage import Principal, StorageError
from ._errors import ApiError, error_response, from_storage
from ._sessions import (
    CSRF_COOKIE,
    LOGIN_PATH,
    SESSION_COOKIE,
    SESSION_TTL_NS,
    Sessions,
)

STATIC = Path(__file__).parent / "static"
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}
_FAILED_LOGIN = """<!doctype html><html lang="en"><meta charset="utf-8">
<title>Metrana: login failed</title><body style="font-family:system-ui;margin:3rem">
<h1>This login link does not work</h1><p>It was already used, has expired, or is unknown.
A login link works once. Run <code>metrana ui</code>, restart <code>metrana serve</code> for a
new one, or mint one with an API key: <code>POST /api/v1/auth/login-tokens</code>.</p></body>
</html>"""


class _KeyLogin(msgspec.Struct, forbid_unknown_fields=True):
    api_key: str


Authenticator = Callable[[str], Principal | None]


def dashboard_routes(sessions: Sessions, authenticate: Authenticator) -> list[BaseRoute]:
    """The routes to add to the API's application."""
    page = (STATIC / "index.html").read_bytes()

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    async def login(request: Request) -> Response:
        try:
            found = await run_in_threadpool(sessions.redeem, request.query_params.get("token", ""))
        except StorageError as error:
            return _failure(error)
        if found is None:
            return HTMLResponse(_FAILED_LOGIN, 401, headers=PAGE_HEADERS)
        answer = RedirectResponse("/", 303, headers={"Cache-Control": "no-store"})
        _set_cookies(request, answer, found[0], found[1].csrf)
        return answer

    async def key_login(request: Request) -> Response:
        """``POST /login`` with ``{"api_key": ...}``: a session for an API key."""
        try:
            if not _same_origin(request):
                raise ApiError(
                    403,
                    "forbidden",
                    "a login from another site (its Origin is not this server's): log in from "
                    "this server's own /login page",
                )
            try:
                body = msgspec.json.decode(await request.body(), type=_KeyLogin)
            except (msgspec.DecodeError, msgspec.ValidationError) as error:
                raise ApiError(
                    400,
                    "invalid_request",
                    f'a login takes the JSON body {{"api_key": "mtr_..."}}: {error}',
                ) from None
            principal = await run_in_threadpool(authenticate, body.api_key.strip())
            if principal is None or principal.kind != "api":
                raise ApiError(
                    401,
                    "unauthorized",
                    "unknown, revoked or expired API key; create one on the server host with "
                    "`metrana keys create`",
                )
            cookie, session = await run_in_threadpool(sessions.open, principal)
        except (ApiError, StorageError) as error:
            return _failure(error)
        answer = Response(b'{"data":{"logged_in":true},"error":null}', 200,
                          media_type="application/json")  # fmt: skip
        _set_cookies(request, answer, cookie, session.csrf)
        return answer

    async def logout(request: Request) -> Response:
        try:
            await run_in_threadpool(sessions.authenticate, request)  # the CSRF header, too
            await run_in_threadpool(sessions.close, request.cookies.get(SESSION_COOKIE, ""))
        except (ApiError, StorageError) as error:
            return _failure(error)
        answer = Response(b'{"data":{"logged_in":false},"error":null}', 200,
                          media_type="application/json")  # fmt: skip
        answer.delete_cookie(SESSION_COOKIE, path="/")
        answer.delete_cookie(CSRF_COOKIE, path="/")
        return answer

    return [
        Route("/", index, methods=["GET"]),
        Route("/experiments/{experiment_id}", index, methods=["GET"]),
        Route("/compare", index, methods=["GET"]),
        Route(LOGIN_PATH, login, methods=["GET"]),
        Route(LOGIN_PATH, key_login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def _failure(error: ApiError | StorageError) -> Response:
    problem = error if isinstance(error, ApiError) else from_storage(error)
    return error_response(problem.status, problem.code, problem.message)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def _set_cookies(request: Request, answer: Response, cookie: str, csrf: str) -> None:
    secure = request.url.scheme == "https"
    age = SESSION_TTL_NS // 10**9
    answer.set_cookie(SESSION_COOKIE, cookie, max_age=age, path="/", secure=secure,
                      httponly=True, samesite="strict")  # fmt: skip
    answer.set_cookie(CSRF_COOKIE, csrf, max_age=age, path="/", secure=secure,
                      httponly=False, samesite="strict")  # fmt: skip


__all__ = ["dashboard_routes"]
