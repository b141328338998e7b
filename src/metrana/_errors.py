"""The exception hierarchy of Metrana.

Every exception the library raises derives from :class:`MetranaError`::

    MetranaError
    ├── MetranaConfigError (ValueError)          a setting has a bad value
    │   └── MetranaMissingApiKeyError            a remote target needs an API key
    ├── MetranaInvalidMetricError (ValueError)   log() got a bad name, step, label or scale
    ├── MetranaInvalidMetricTypeError (TypeError) log() got a value or argument of a wrong type
    ├── MetranaNotInitializedError (RuntimeError) log()/close() before init() or after close()
    ├── MetranaAlreadyInitializedError (RuntimeError) init() twice without close()
    ├── MetranaEventQueueFullError               the writer's ring is full (backpressure Raise)
    ├── MetranaTimeoutError (TimeoutError)       close()/flush() gave up; carries ``pending``
    ├── MetranaDispatcherError                   the dispatcher could not start or hand-shake
    │   ├── MetranaRunExistsError                resume_strategy=Never and the run exists
    │   ├── DispatcherVanishedError*             killed before its handshake: start another
    │   └── TargetUnreachableError*              the target did not answer the handshake
    ├── MetranaDeliveryError                     the dispatcher could not deliver data
    ├── MetranaCorruptRingError                  a ring file does not hold what it should
    └── MetricsApiError (RuntimeError)           the REST client's errors (metrana.Client)
        ├── MetricsApiRequestError               an HTTP error answer, or no answer at all
        ├── MetricsApiResponseError              a 2xx answer that is not the API's envelope/type
        ├── MetricsApiAuthError                  no usable API key or host (auth.json, host=)
        └── MetricsApiValidationError (ValueError) a call's arguments refused before sending

Those marked * are internal: raised and caught inside Metrana, never by a public call.
"""

from __future__ import annotations

__all__ = [
    "MetranaAlreadyInitializedError",
    "MetranaConfigError",
    "MetranaCorruptRingError",
    "MetranaDeliveryError",
    "MetranaDispatcherError",
    "MetranaError",
    "MetranaEventQueueFullError",
    "MetranaInvalidMetricError",
    "MetranaInvalidMetricTypeError",
    "MetranaMissingApiKeyError",
    "MetranaNotInitializedError",
    "MetranaRunExistsError",
    "MetranaTimeoutError",
    "MetricsApiAuthError",
    "MetricsApiError",
    "MetricsApiRequestError",
    "MetricsApiResponseError",
    "MetricsApiValidationError",
]


class MetranaError(Exception):
    """Root of every exception raised by Metrana."""


class MetranaConfigError(MetranaError, ValueError):
    """A configuration value is invalid; the message names the setting and what it accepts."""


class MetranaMissingApiKeyError(MetranaConfigError):
    """A remote ingestion target was configured without an API key."""


class MetranaInvalidMetricError(MetranaError, ValueError):
    """``log()`` was given a value it cannot accept (bad name, step, label or scale)."""


class MetranaInvalidMetricTypeError(MetranaError, TypeError):
    """``log()`` was given an argument of the wrong type."""


class MetranaNotInitializedError(MetranaError, RuntimeError):
    """``log()`` or ``close()`` was called before ``init()`` or after ``close()``."""


class MetranaAlreadyInitializedError(MetranaError, RuntimeError):
    """``init()`` was called twice in one process without ``close()`` in between."""


class MetranaEventQueueFullError(MetranaError):
    """The writer's ring buffer is full and the backpressure strategy is ``Raise``."""


class MetranaTimeoutError(MetranaError, TimeoutError):
    """``close()`` or ``flush()`` gave up waiting; ``pending`` points were not delivered."""

    def __init__(self, message: str, pending: int) -> None:
        super().__init__(message)
        self.pending = pending


class MetranaDispatcherError(MetranaError):
    """The dispatcher process could not be started or could not open the run."""


class MetranaRunExistsError(MetranaDispatcherError):
    """The run already exists, belongs to another job, and ``resume_strategy`` is ``Never``."""


class DispatcherVanishedError(MetranaDispatcherError):
    """The dispatcher died before its handshake without saying why (killed): start another."""


class TargetUnreachableError(MetranaDispatcherError):
    """The run could not be opened because the target did not answer (not because it said
    no): a replacement dispatcher may carry on with its predecessor's run."""


class MetranaDeliveryError(MetranaError):
    """The dispatcher could not deliver data; the message carries the target's answer."""


class MetranaCorruptRingError(MetranaError):
    """A ring file's header or a record in it is not what the ring format promises."""


class MetricsApiError(MetranaError, RuntimeError):
    """Root of the REST client's errors (a ``RuntimeError``, as in the Syvain client)."""


class MetricsApiRequestError(MetricsApiError):
    """The server answered with an error status, or could not be reached.

    As the Syvain client has it: ``status_code`` (None when there was no answer),
    ``error_code`` (the server's machine code, from ``details: "code=…"``, or None) and
    ``retryable`` (whether trying again later may succeed); the message reads
    ``HTTP <status>: <message>[: <details>]``. ``server_message`` is the server's message
    alone (or what went wrong on the way)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_code: str | None = None,
        retryable: bool,
        server_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.retryable = retryable
        self.server_message = message if server_message is None else server_message


class MetricsApiResponseError(MetricsApiError):
    """A successful answer that is not the API's envelope, or whose ``data`` does not match
    the expected type."""


class MetricsApiAuthError(MetricsApiError):
    """No usable credentials: an empty API key, a bad host, or ``auth="local"`` without a
    valid ``auth.json``. (In the Syvain package this class derives from ``RuntimeError`` only;
    here it is a ``MetricsApiError``, as that package's README promises.)"""


class MetricsApiValidationError(MetricsApiError, ValueError):
    """A call's arguments break the API's rules (an unknown field, a string too long, a
    non-finite number, more than 1,000 metrics...): refused before anything is sent. Also a
    ``ValueError``, as the Syvain client's pydantic errors are."""
