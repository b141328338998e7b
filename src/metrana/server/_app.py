"""The Starlette application: every route of ``ROUTES`` plus protobuf ingestion and health.

A request is authenticated (``Authorization: Bearer KEY``), its body decoded into the route's
msgspec type, its handler run in a worker thread against the store, and the answer encoded as
JSON. A body field or query parameter the route does not define is refused with a 400 that
names it (see ``_strict``), before anything is run or recorded. A POST, PATCH or DELETE that
carries an ``Idempotency-Key`` is acted on once: a repeat gets the first answer again.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.routing import Route as StarletteRoute

from .. import __version__
from .._retry import IN_PROGRESS
from ..api._routes import (
    API_PREFIX,
    DEFAULT_MAX_BODY_BYTES,
    INGEST_PATH,
    PROTOBUF_CONTENT_TYPE,
    ROUTES,
    Route,
)
from ..api._types import DEFAULT_INGESTION_KEY_TTL_MS
from ..proto import IngestResponse
from ..proto._codec import BatchDecodeError, decode_batch
from ..storage import InProgressError, Principal, StorageError, Store
from ._dashboard import dashboard_routes
from ._errors import ApiError, error_response, from_storage
from ._handlers import HANDLERS, Context
from ._openapi import openapi_document
from ._sessions import SESSION_COOKIE, Sessions
from ._strict import refuse_unknown_query, strict_type, unknown_fields_message

IDEMPOTENCY_TTL_NS = 24 * 3600 * 10**9  # a retried request comes within minutes, not a day
IDEMPOTENCY_SWEEP_EVERY = 1000
IDEMPOTENT_METHODS = frozenset({"GET"})

log = logging.getLogger("metrana.server")

Endpoint = Callable[[Request], Awaitable[Response]]


def create_app(
    store: Store,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ingestion_key_ttl_ms: int = DEFAULT_INGESTION_KEY_TTL_MS,
    sessions: Sessions | None = None,
) -> Starlette:
    """The server's ASGI application over an open store; an ingestion key minted without a
    ``ttl_ms`` lives ``ingestion_key_ttl_ms``. The dashboard's logins are in ``sessions``
    (also ``app.state.sessions``)."""
    missing = [route.name for route in ROUTES if route.name not in HANDLERS]
    assert not missing, f"routes without a handler: {missing}"
    sessions = Sessions(store) if sessions is None else sessions
    api = _Api(store, max_body_bytes, ingestion_key_ttl_ms, sessions)
    routes: list[BaseRoute] = [
        StarletteRoute(API_PREFIX + _starlette_path(route.path), api.endpoint(route),
                       methods=[route.method], name=route.name)
        for route in ROUTES
    ]  # fmt: skip
    routes += [
        StarletteRoute(API_PREFIX + INGEST_PATH, api.ingest, methods=["POST"], name="ingest"),
        StarletteRoute(API_PREFIX + "/openapi.json", api.openapi, methods=["GET"]),
        StarletteRoute(API_PREFIX + "/health", api.health, methods=["GET"]),
        StarletteRoute("/healthz", api.health, methods=["GET"]),
    ]
    routes += dashboard_routes(sessions, store.authenticate)
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_allowed})
    app.state.sessions = sessions
    return app


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, "not_found", f"no route {request.method} {request.url.path}")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return error_response(
        405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}"
    )


def _starlette_path(path: str) -> str:
    """A metric name may contain slashes (ids are strings, read by the handlers)."""
    return path.replace("{metric_name}", "{metric_name:path}")


class _Api:
    def __init__(
        self, store: Store, max_body_bytes: int, ingestion_key_ttl_ms: int, sessions: Sessions
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.max_body_bytes = max_body_bytes
        self.ingestion_key_ttl_ms = ingestion_key_ttl_ms
        self._openapi = msgspec.json.encode(openapi_document())
        self._idempotent_requests = 0
        # (scope, key) of the idempotent requests being acted on in this process: a repeat
        # meanwhile is told to retry (409) rather than queued behind the store's write lock
        self._in_progress: set[tuple[str, str]] = set()

    # -- shared steps -----------------------------------------------------------------------

    async def authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        if not header and SESSION_COOKIE in request.cookies:
            return await run_in_threadpool(self.sessions.authenticate, request)  # dashboard
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise ApiError(
                401, "unauthorized", "missing API key: send the header 'Authorization: Bearer KEY'"
            )
        principal = await run_in_threadpool(self.store.authenticate, secret.strip())
        if principal is None:
            raise ApiError(
                401,
                "unauthorized",
                "unknown, revoked or expired key; create an API key on the server host with "
                "`metrana keys create` (see `metrana keys list`), or mint another ingestion "
                "key",
            )
        return principal

    async def read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self._too_large(int(declared))
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large(size)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, size: int) -> ApiError:
        return ApiError(
            413,
            "payload_too_large",
            f"body of {size} bytes is over the server's limit of {self.max_body_bytes} bytes; "
            "send it in smaller parts",
        )

    async def guarded(self, request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
        try:
            return await work()
        except ApiError as error:
            return error_response(error.status, error.code, error.message)
        except InProgressError as error:
            return error_response(409, IN_PROGRESS, f"{error}; retry it shortly to get its answer")
        except StorageError as error:
            problem = from_storage(error)
            headers = {"Retry-After": "1"} if problem.status == 503 else None
            return error_response(problem.status, problem.code, problem.message, headers)
        except sqlite3.Error as error:
            return error_response(
                503, "storage_unavailable", f"storage: {error}", {"Retry-After": "1"}
            )
        except OverflowError:
            return error_response(400, "invalid_request", "a number is out of range (64-bit)")
        except Exception:
            log.exception("unexpected error answering %s %s", request.method, request.url.path)
            return error_response(500, "internal", "the server failed; see its log")

    # -- REST routes ------------------------------------------------------------------------

    def endpoint(self, route: Route) -> Endpoint:
        handler = HANDLERS[route.name]
        decoder = (
            msgspec.json.Decoder(strict_type(route.request)) if route.request is not None else None
        )

        async def endpoint(request: Request) -> Response:
            async def work() -> Response:
                principal = await self.authenticate(request)
                path = dict(request.path_params)
                _authorize(route, principal, path)
                query = _query(route, request)
                raw = await self.read_body(request) if decoder is not None else b""
                body = _decode(route, decoder, raw) if decoder is not None else None
                origin = f"{request.url.scheme}://{request.url.netloc}"
                context = Context(
                    self.store,
                    principal,
                    path,
                    query,
                    body,
                    origin,
                    self.ingestion_key_ttl_ms,
                    self.sessions,
                )

                def act() -> tuple[int, bytes]:
                    return 200, enveloped(msgspec.json.encode(handler(context)))

                key = request.headers.get("idempotency-key")
                if key and route.idempotent and route.method not in IDEMPOTENT_METHODS:
                    scope = f"{principal.kind}:{principal.key_id}"
                    fingerprint = hashlib.sha256(
                        f"{route.method} {request.url.path}\n".encode() + raw
                    ).hexdigest()
                    running = (scope, key[:200])
                    if running in self._in_progress:
                        raise ApiError(
                            409,
                            IN_PROGRESS,
                            "a request with this Idempotency-Key is still being acted on; "
                            "retry it shortly to get its answer",
                        )
                    self._in_progress.add(running)
                    try:
                        status, answer = await run_in_threadpool(
                            self.store.idempotent, scope, key[:200], fingerprint, act
                        )
                    finally:
                        self._in_progress.discard(running)
                    self._idempotent_requests += 1
                    if self._idempotent_requests % IDEMPOTENCY_SWEEP_EVERY == 0:
                        cutoff = time.time_ns() - IDEMPOTENCY_TTL_NS
                        await run_in_threadpool(self.store.forget_idempotency, cutoff)
                else:
                    status, answer = await run_in_threadpool(act)
                return Response(answer, status, media_type="application/json")

            return await self.guarded(request, work)

        return endpoint

    # -- protobuf ingestion -----------------------------------------------------------------

    async def ingest(self, request: Request) -> Response:
        async def work() -> Response:
            principal = await self.authenticate(request)
            if principal.kind == "session":
                raise ApiError(403, "forbidden", "protobuf ingestion needs an ingestion key")
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            if content_type != PROTOBUF_CONTENT_TYPE:
                raise ApiError(
                    415,
                    "unsupported_media_type",
                    f"ingestion takes {PROTOBUF_CONTENT_TYPE} (a metrana.v1.IngestBatch), "
                    f"not {content_type or 'a body without Content-Type'}",
                )
            raw = await self.read_body(request)
            try:
                batch = decode_batch(raw)
            except BatchDecodeError as error:
                raise ApiError(400, "invalid_batch", str(error)) from None
            _authorize_experiment(principal, str(batch.experiment_id))
            if principal.kind == "api":
                await run_in_threadpool(
                    self.store.get_experiment, principal.org_id, batch.experiment_id
                )
            result, replayed = await run_in_threadpool(
                self.store.write_batch,
                batch.producer_id,
                batch.sequence,
                batch.experiment_id,
                batch.series,
            )
            answer = IngestResponse(
                accepted=result.accepted,
                duplicates=result.duplicates,
                replayed=replayed,
                duplicates_by_series=result.duplicates_by_series,
            )
            return Response(answer.SerializeToString(), 200, media_type=PROTOBUF_CONTENT_TYPE)

        return await self.guarded(request, work)

    # -- documents --------------------------------------------------------------------------

    async def openapi(self, request: Request) -> Response:
        return Response(self._openapi, media_type="application/json")

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})


def enveloped(data: bytes) -> bytes:
    """A JSON answer in the Syvain API's success envelope."""
    return b'{"data":' + data + b',"error":null}'


def _authorize(route: Route, principal: Principal, path: dict[str, Any]) -> None:
    if route.auth == "api" and principal.kind not in ("api", "session"):
        raise ApiError(
            403,
            "forbidden",
            f"{route.name} needs an API key; an ingestion key can only ingest and annotate "
            "its own experiment",
        )
    if route.auth == "ingestion":
        _authorize_experiment(principal, path.get("experiment_id"))


def _authorize_experiment(principal: Principal, experiment_id: str | None) -> None:
    if principal.kind == "ingestion" and str(principal.experiment_id) != experiment_id:
        raise ApiError(
            403,
            "forbidden",
            f"this ingestion key belongs to experiment {principal.experiment_id}, "
            f"not {experiment_id}",
        )


def _query(route: Route, request: Request) -> Any:
    """The route's query struct from the query string: unknown parameters refused by name,
    a repeated parameter gathered for a list field, text converted ("10" -> 10)."""
    refuse_unknown_query(route, request.query_params.keys())
    if route.query is None:
        return None
    lists = {f.encode_name for f in msgspec.structs.fields(route.query) if _is_list(f.type)}
    values: dict[str, Any] = {}
    for name in request.query_params:
        if name in lists:
            values[name] = request.query_params.getlist(name)
        else:
            values[name] = request.query_params[name]
    try:
        return msgspec.convert(values, route.query, strict=False)
    except msgspec.ValidationError as error:
        raise ApiError(400, "invalid_request", f"invalid query parameter: {error}") from None


def _is_list(tp: Any) -> bool:
    return getattr(tp, "__origin__", None) is list


def _decode(route: Route, decoder: msgspec.json.Decoder[Any], raw: bytes) -> Any:
    if not raw:
        raise ApiError(400, "invalid_request", "this route needs a JSON body")
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as error:
        # Unknown fields first: a misspelt field is often why a required one is "missing".
        message = unknown_fields_message(route, raw) or f"invalid body: {error}"
        raise ApiError(400, "invalid_request", message) from None
    except msgspec.DecodeError as error:
        raise ApiError(400, "invalid_request", f"body is not JSON: {error}") from None
