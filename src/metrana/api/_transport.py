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
from .._retry import Pacer, RetryInterrupted, RetryPolicy, is_retryable, parse_retry_after
from ._errors import MetricsApiRequestError, MetricsApiResponseError
from ._routes import API_PREFIX, ROUTES_BY_NAME, Route

T = TypeVar("T")

# Transient failures of the connection, retried like a 503. Anything else (a malformed URL, an
# unsupported scheme, a proxy misconfiguration) will not get better by waiting.
RETRYABLE_TRANSPORT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ERROR_TEXT_LIMIT = 500  # as much of a non-JSON error body as the Syvain client keeps


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

    def url(self, route: Route, path: Mapping[str, str | int]) -> str:
        """``host + /api/v1 + path`` with every placeholder URL-quoted (``/`` included)."""
        quoted = {name: quote(str(value), safe="") for name, value in path.items()}
        return self.host + API_PREFIX + route.path.format(**quoted)

    def call(
        self,
        name: str,
        response_type: type[T],
        *,
        path: Mapping[str, str | int] | None = None,
        query: Mapping[str, str | int | None] | None = None,
        body: msgspec.Struct | None = None,
        token: str | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Op[T]:
        """One call of route ``name``: send it (with retries) and decode its answer.

        ``token`` defaults to the API key; ``query`` values of None are left out; every
        non-GET request carries one ``Idempotency-Key`` for all of its attempts.
        """
        route = ROUTES_BY_NAME[name]
        assert response_type == route.response, f"{name}: {response_type} != {route.response}"
        headers = {"Accept": "application/json"}
        bearer = self.api_key if token is None else token
        if route.auth != "none":
            headers["Authorization"] = f"Bearer {bearer}"
        if route.method not in IDEMPOTENT_METHODS:
            headers["Idempotency-Key"] = idempotency_key or uuid.uuid4().hex
        content: bytes | None = None
        if body is not None:
            content = _encoder.encode(body)
            headers["Content-Type"] = "application/json"
        params = {key: str(value) for key, value in (query or {}).items() if value is not None}
        unknown = set(params) - set(route.query)
        assert not unknown, f"{name}: query parameters {unknown} are not in the route table"
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

        response = yield from self._send_with_retries(route, build)
        return self._decode(route, response_type, response)

    def _send_with_retries(
        self, route: Route, build: Callable[[], httpx.Request]
    ) -> Generator[Step, Outcome, httpx.Response]:
        return (yield from send_with_retries(build, self.retry, what=route.name, host=self.host))

    @staticmethod
    def _decode(route: Route, response_type: type[T], response: httpx.Response) -> T:
        data = unwrap(response.content, f"{route.name}, {route.method} {route.path}")
        try:
            return msgspec.json.decode(data, type=response_type)
        except msgspec.DecodeError as error:  # ValidationError included
            raise MetricsApiResponseError(
                f"Metrics API response for {route.name} ({route.method} {route.path}) did not "
                f"match the expected schema: not a valid {_type_name(response_type)}: {error}"
            ) from None


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
    (408, 425, 429, 5xx, a 409 ``idempotency_key_in_progress``) are retried within
    ``policy``'s budget, never sooner than ``Retry-After`` (which, with a ``pacer``, holds
    back every sender sharing it). Any other error answer, or the budget spent, raises
    :class:`MetricsApiRequestError` with the server's status and code (``status_code`` None
    when the server could not be reached); ``what`` names the request in log lines.
    """
    started = time.monotonic()
    attempt = 0
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
        elif isinstance(outcome, httpx.TransportError):
            failure = unreachable(host, outcome)
            if not isinstance(outcome, RETRYABLE_TRANSPORT_ERRORS):
                raise failure from outcome
        else:  # pragma: no cover - a driver bug
            raise TypeError(f"a Send step was answered with {outcome!r}")
        attempt += 1
        delay = policy.delay(attempt, retry_after)
        if not policy.allows(attempt, started, delay):
            elapsed = time.monotonic() - started
            gave_up = f"(gave up after {attempt} attempts in {elapsed:.1f} s)"
            raise MetricsApiRequestError(
                f"{failure} {gave_up}",
                status_code=failure.status_code,
                error_code=failure.error_code,
                retryable=True,
                server_message=f"{failure.server_message} {gave_up}",
            ) from failure
        logger.debug(
            "%s attempt %d failed (%s); retrying in %.2f s",
            what,
            attempt,
            failure.server_message,
            delay,
        )
        yield Sleep(delay)


def unreachable(host: str, error: httpx.TransportError) -> MetricsApiRequestError:
    """The error of a request that got no answer from ``host``: no status, retryable."""
    detail = str(error) or "no detail"
    return MetricsApiRequestError(
        f"cannot reach {host}: {type(error).__name__}: {detail}", retryable=True
    )


class _ErrorDetail(msgspec.Struct):
    message: str = ""
    details: str = ""


class _ErrorAnswer(msgspec.Struct):
    error: _ErrorDetail | str


def error_from_response(response: httpx.Response) -> MetricsApiRequestError:
    """The error of an answer with an error status: the server's ``{"error": {"message",
    "details"}}`` (or ``{"error": "text"}``; else the start of the body), the machine code
    read from ``details`` (``code=…``, among ``;``-separated pairs)."""
    status = response.status_code
    code: str | None = None
    details = ""
    try:
        answer = msgspec.json.decode(response.content, type=_ErrorAnswer)
    except msgspec.DecodeError:
        message = response.text[:ERROR_TEXT_LIMIT] or response.reason_phrase
    else:
        if isinstance(answer.error, str):
            message = answer.error
        else:
            message = answer.error.message or "Metrics API request failed."
            details = answer.error.details
            code = error_code(details)
    return MetricsApiRequestError(
        f"HTTP {status}: {message}: {details}" if details else f"HTTP {status}: {message}",
        status_code=status,
        error_code=code,
        retryable=is_retryable(status, code),
        server_message=message,
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


def unwrap(content: bytes, context: str) -> msgspec.Raw:
    """The ``data`` of a success envelope ``{"data": …, "error": null}``. A body that is not
    JSON (a proxy's page, a cut answer) is a retryable :class:`MetricsApiRequestError`; JSON
    of another shape is a :class:`MetricsApiResponseError`. ``context`` names the call."""
    try:
        envelope = msgspec.json.decode(content, type=_Envelope)
    except msgspec.ValidationError:
        problem = "must be a JSON object"
    except msgspec.DecodeError as error:
        raise MetricsApiRequestError(
            f"Metrics API request failed for {context}: the answer is not JSON ({error})",
            retryable=True,
        ) from None
    else:
        if envelope.error is msgspec.UNSET:
            problem = "must include error"
        elif envelope.error is not None:
            problem = "error must be null"
        elif isinstance(envelope.data, msgspec.UnsetType):
            problem = "must include data"
        else:
            return envelope.data
    raise MetricsApiResponseError(f"Metrics API response {problem} ({context}).")


def _type_name(response_type: Any) -> str:
    return getattr(response_type, "__name__", None) or repr(response_type)


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
