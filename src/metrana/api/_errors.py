"""Errors of the REST client::

MetranaError
└── MetricsApiError
    ├── MetricsApiRequestError   HTTP error answer or server unreachable (status, code, message)
    ├── MetricsApiResponseError  a 2xx answer whose body does not match its type
    └── MetricsApiAuthError      local credentials (auth.json) missing or invalid
"""

from __future__ import annotations

from .._errors import MetranaError


class MetricsApiError(MetranaError):
    """Root of the REST client's errors."""


class MetricsApiRequestError(MetricsApiError):
    """The server answered with an error status, or could not be reached (``status`` 0)."""

    def __init__(self, message: str, status: int = 0, code: str = "unreachable") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.server_message = message


class MetricsApiResponseError(MetricsApiError):
    """A successful answer whose body does not match the expected type."""


class MetricsApiAuthError(MetricsApiError):
    """Local authentication (``~/.config/metrana/auth.json``) is missing or invalid."""
