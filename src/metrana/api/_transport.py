"""The REST exchange without I/O, shared by :class:`Client` and :class:`AsyncClient`.

Every API call is written once, as a generator (an :data:`Op`) that yields what it needs done —
:class:`Send` a request, or :class:`Sleep` before a retry — and is sent back the outcome (an
``httpx.Response``, or the ``httpx.TransportError`` the send raised). The sync client drives an
op with ``httpx.Client.send`` and ``time.sleep``, the async one with ``await`` (see
:func:`drive` and :func:`adrive`). Request building, the retry loop and the decoding of answers
and errors therefore exist in exactly one place: :meth:`Exchange.call`.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from typing import Any, TypeVar, cast
from urllib.parse import quote

import httpx
import msgspec

from .._logging import logger
from .._retry import (
    IN_PROGRESS,
    Pacer,
    RetryInterrupted,
    RetryPolicy,
    is_retryable,
    parse_retry_after,
)
from ._errors import MetricsApiRequestError, MetricsApiResponseError, MetricsApiValidationError
from ._routes import API_PREFIX, ROUTES_BY_NAME, Route

T = TypeVar("T")

# Transient failures of the connection, retried like a 503. Anything else (a malformed URL, an
# unsupported scheme, a proxy misconfiguration) will not get better by waiting.
RETRYABLE_TRANSPORT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)
IDEMPOTENT_WRITES = frozenset({"POST", "PATCH"})  # the methods that carry Idempotency-Key
IDEMPOTENCY_KEY_PREFIX = "metrana-"
IN_PROGRESS_POLLS = 10  # answers 409 idempotency_key_in_progress before giving up
IN_PROGRESS_POLL_SECONDS = 0.5
ERROR_TEXT_LIMIT = 500  # as much of a non-JSON error body as the Syvain client keeps
GENERIC_FAILURE = "Metrics API request failed."


class Send(msgspec.Struct, frozen=True):
    """Send this request; the driver answers with the response or the transport error."""

    request: httpx.Request


class Sleep(msgspec.Struct, frozen=True):
    """Wait this many seconds; the driver answers with None."""

    seconds: float


Step = Send | Sleep
Outcome = httpx.Response | httpx.TransportError | None
Op = Generator[Step, Outcome, T]

_encoder = msgspec.json.Encoder()


class Exchange:
    """What both clients share: where to send, which key to present, how long to wait and
    how often to retry."""

    def __init__(
        self, host: str, api_key: str, timeout: float, ingest_timeout: float, retry: RetryPolicy
    ) -> None:
        self.host = host
        self.api_key = api_key
        self.timeout = timeout
        self.ingest_timeout = ingest_timeout
        self.retry = retry

    def url(self, route: Route, path: Mapping[str, str]) -> str:
        """``host + /api/v1 + path`` with every placeholder URL-quoted (``/`` included)."""
        quoted = {name: quote(str(value), safe="") for name, value in path.items()}
        return self.host + API_PREFIX + route.path.format(**quoted)

    def call(
        self,
        name: str,
        response_type: type[T],
        *,
        path: Mapping[str, str] | None = None,
        query: msgspec.Struct | None = None,
        body: msgspec.Struct | msgspec.Raw | None = None,
        token: str | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Op[T]:
        """One call of route ``name``: send it (with retries) and decode its answer.

        ``token`` defaults to the API key. ``query`` is the route's query struct: None values
        are left out, booleans sent as ``true``/``false`` and lists as repeated parameters.
        A POST or PATCH carries an ``Idempotency-Key`` (``idempotency_key``, else a new one),
        the same on every attempt, unless its route is not idempotent (minting a key).
        """
        route = ROUTES_BY_NAME[name]
        assert response_type == route.response, f"{name}: {response_type} != {route.response}"
        assert (query is None) == (route.query is None) or isinstance(query, route.query), name
        headers = {
            "Accept": "application/json",
            "Authorization": f"Bearer {self.api_key if token is None else token}",
        }
        if route.method in IDEMPOTENT_WRITES and route.idempotent:
            headers["Idempotency-Key"] = idempotency_key or new_idempotency_key()
        content: bytes | None = None
        if body is not None:
            content = encode_body(name, body)
            headers["Content-Type"] = "application/json"
        params = httpx.QueryParams(tuple(query_pairs(query)))
        url = self.url(route, path or {})
        seconds = self.timeout if timeout is None else timeout
        timeouts = httpx.Timeout(seconds).as_dict()

        def build() -> httpx.Request:
            return httpx.Request(
                route.method,
                url,
                params=params,
                headers=headers,
                content=content,
                extensions={"timeout": timeouts},
            )

        response = yield from send_with_retries(build, self.retry, what=name, host=self.host)
        return decode_data(name, response_type, response.content)


def new_idempotency_key() -> str:
    """An ``Idempotency-Key``: ``metrana-`` and a random uuid4 in hex."""
    return f"{IDEMPOTENCY_KEY_PREFIX}{uuid.uuid4().hex}"


def encode_body(name: str, body: msgspec.Struct | msgspec.Raw) -> bytes:
    """``body`` as JSON (a ``Raw`` body is JSON already); :class:`MetricsApiValidationError`
    for what JSON cannot carry (a metadata value that is an arbitrary object, say), before
    anything is sent."""
    try:
        return _encoder.encode(body)
    except (TypeError, ValueError, OverflowError) as error:
        raise MetricsApiValidationError(f"invalid {name} request: {error}") from None


def query_pairs(query: msgspec.Struct | None) -> list[tuple[str, str]]:
    """The parameters of a query struct, under their names on the wire (``from_ms`` is
    ``from``), as the Syvain client sends them."""
    if query is None:
        return []
    pairs: list[tuple[str, str]] = []
    for field in msgspec.structs.fields(query):
        value = getattr(query, field.name)
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            pairs.append((field.encode_name, text))
    return pairs


def send_with_retries(
    build: Callable[[], httpx.Request],
    policy: RetryPolicy,
    *,
    what: str,
    host: str,
    pacer: Pacer | None = None,
) -> Generator[Step, Outcome, httpx.Response]:
    """The one retry loop, of the REST client and of the dispatcher's HTTP target.

    Sends ``build()`` until it succeeds; transient transport errors and the retryable answers
    (408, 425, 429, 5xx) are retried within ``policy``'s budget, with full-jitter backoff and
    never sooner than ``Retry-After`` (which, with a ``pacer``, holds back every sender
    sharing it). A 409 ``idempotency_key_in_progress`` (the first request with this
    ``Idempotency-Key`` is still running) is polled apart: every 0.5 s, up to 10 answers, not
    counted against the budget. Any other error answer, or the budget spent, raises
    :class:`MetricsApiRequestError` with the server's status and code (``status_code`` None
    when the server could not be reached); ``what`` names the request in messages.
    """
    started = time.monotonic()
    attempt = 0
    in_progress = 0
    while True:
        if pacer is not None and (wait := pacer.remaining()) > 0:
            yield Sleep(wait)
        outcome = yield Send(build())
        retry_after: float | None = None
        if isinstance(outcome, httpx.Response):
            if outcome.is_success:
                return outcome
            failure = error_from_response(outcome)
            if not failure.retryable:
                raise failure
            retry_after = parse_retry_after(outcome.headers.get("Retry-After"))
            if retry_after is not None and pacer is not None:
                pacer.hint(retry_after)
            if failure.error_code == IN_PROGRESS:
                in_progress += 1
                if in_progress >= IN_PROGRESS_POLLS:
                    raise _gave_up(failure, f"{in_progress} answers", started)
                yield Sleep(max(IN_PROGRESS_POLL_SECONDS, retry_after or 0.0))
                continue
        elif isinstance(outcome, httpx.TransportError):
            failure = unreachable(host, outcome)
            if not isinstance(outcome, RETRYABLE_TRANSPORT_ERRORS):
                raise failure from outcome
        else:  # pragma: no cover - a driver bug
            raise TypeError(f"a Send step was answered with {outcome!r}")
        attempt += 1
        delay = policy.delay(attempt, retry_after)
        if not policy.allows(attempt, started, delay):
            raise _gave_up(failure, f"{attempt} attempts", started) from failure
        logger.debug(
            "%s attempt %d failed (%s); retrying in %.2f s",
            what,
            attempt,
            failure.server_message,
            delay,
        )
        yield Sleep(delay)


def _gave_up(failure: MetricsApiRequestError, tries: str, started: float) -> MetricsApiRequestError:
    gave_up = f"(gave up after {tries} in {time.monotonic() - started:.1f} s)"
    return MetricsApiRequestError(
        f"{failure} {gave_up}",
        status_code=failure.status_code,
        error_code=failure.error_code,
        retryable=True,
        server_message=f"{failure.server_message} {gave_up}",
    )


def unreachable(host: str, error: httpx.TransportError) -> MetricsApiRequestError:
    """The error of a request that got no answer from ``host``: no status, retryable."""
    detail = str(error) or "no detail"
    return MetricsApiRequestError(
        f"cannot reach {host}: {type(error).__name__}: {detail}", retryable=True
    )


def error_text(error: Any) -> str | None:
    """What the Syvain client reads from an envelope's ``error``: None for null, a string as
    it is, ``{"message", "details"}`` as ``message[: details]``, anything else as a generic
    failure."""
    if error is None or error is msgspec.UNSET:
        return None
    if isinstance(error, str):
        return error
    if not isinstance(error, dict):
        return GENERIC_FAILURE
    message, details = error.get("message"), error.get("details")
    text = message if isinstance(message, str) and message else GENERIC_FAILURE
    return f"{text}: {details}" if isinstance(details, str) and details else text


def error_from_response(response: httpx.Response) -> MetricsApiRequestError:
    """The error of an answer with an error status: ``HTTP <status>: <message>[: <details>]``
    from ``{"error": {"message", "details"}}`` or ``{"error": "text"}`` (else the start of the
    body), the machine code read from ``details`` (``code=…`` among ``;``-separated pairs)."""
    status = response.status_code
    try:
        answer: Any = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        answer = None
    error = answer.get("error") if isinstance(answer, dict) else None
    text = error_text(error) or response.text[:ERROR_TEXT_LIMIT] or GENERIC_FAILURE
    code: str | None = None
    server_message = text
    if isinstance(error, dict):
        details = error.get("details")
        code = error_code(details) if isinstance(details, str) else None
        message = error.get("message")
        server_message = message if isinstance(message, str) and message else GENERIC_FAILURE
    return MetricsApiRequestError(
        f"HTTP {status}: {text}",
        status_code=status,
        error_code=code,
        retryable=is_retryable(status, code),
        server_message=server_message,
    )


def error_code(details: str) -> str | None:
    """``code`` of ``key=value;key=value`` details, if there is one."""
    for part in details.split(";"):
        key, equals, value = part.strip().partition("=")
        if equals and key == "code" and value:
            return value
    return None


class _Envelope(msgspec.Struct):
    data: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error: Any = msgspec.UNSET


def decode_data(name: str, response_type: type[T], content: bytes) -> T:
    """The ``data`` of a success envelope ``{"data": …, "error": null}`` of call ``name``, as
    ``response_type``. A body that is not JSON (a proxy's page, a cut answer) is a retryable
    :class:`MetricsApiRequestError`; JSON of another shape a :class:`MetricsApiResponseError`,
    in the Syvain client's words."""
    try:
        envelope = msgspec.json.decode(content, type=_Envelope)
    except msgspec.ValidationError:
        raise MetricsApiResponseError("Metrics API response must be a JSON object.") from None
    except msgspec.DecodeError as error:
        raise MetricsApiRequestError(
            f"Metrics API request failed for {name}: the answer is not JSON ({error})",
            retryable=True,
        ) from None
    if text := error_text(envelope.error):
        raise MetricsApiResponseError(f"Metrics API error: {text}")
    if envelope.error is msgspec.UNSET:
        raise MetricsApiResponseError("Metrics API response must include error.")
    if envelope.error is not None:
        raise MetricsApiResponseError("Metrics API response error must be null.")
    if isinstance(envelope.data, msgspec.UnsetType):
        raise MetricsApiResponseError("Metrics API response must include data.")
    try:
        return msgspec.json.decode(envelope.data, type=response_type)
    except msgspec.DecodeError as error:  # ValidationError included
        raise MetricsApiResponseError(
            f"Metrics API response for {name} did not match the expected schema."
        ) from error


def drive(http: httpx.Client, op: Op[T], stop: threading.Event | None = None) -> T:
    """Run ``op`` with blocking I/O. A wait between attempts ends early when ``stop`` is set,
    raising :class:`RetryInterrupted`."""
    outcome: Outcome = None
    try:
        while True:
            step = op.send(outcome)
            if isinstance(step, Sleep):
                if stop is None:
                    time.sleep(step.seconds)
                elif stop.wait(step.seconds):
                    raise RetryInterrupted(f"stopped while waiting {step.seconds:.1f} s to retry")
                outcome = None
                continue
            try:
                outcome = http.send(step.request)
            except httpx.TransportError as error:
                outcome = error
    except StopIteration as stop:
        return cast(T, stop.value)
    finally:
        op.close()


async def adrive(http: httpx.AsyncClient, op: Op[T]) -> T:
    """Run ``op`` with asyncio I/O."""
    import asyncio  # here: the dispatcher and blocking clients never load it (about 4 MiB)

    outcome: Outcome = None
    try:
        while True:
            step = op.send(outcome)
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                outcome = None
                continue
            try:
                outcome = await http.send(step.request)
            except httpx.TransportError as error:
                outcome = error
    except StopIteration as stop:
        return cast(T, stop.value)
    finally:
        op.close()


_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def needs_tls(url: str) -> bool:
    """Whether a client for ``url`` may need TLS. One for a plain-HTTP host is built without a
    TLS context (loading the CA bundle costs about 5 MiB of memory per client), unless a proxy
    is configured in the environment: that proxy may be reached over TLS."""
    if not url.lower().startswith("http://"):
        return True
    return any(os.environ.get(name) or os.environ.get(name.lower()) for name in _PROXY_VARIABLES)
