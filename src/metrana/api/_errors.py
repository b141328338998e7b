"""The REST client's errors, defined with every other error in ``metrana._errors``."""

from __future__ import annotations

from .._errors import (
    MetricsApiAuthError,
    MetricsApiError,
    MetricsApiRequestError,
    MetricsApiResponseError,
    MetricsApiValidationError,
)

__all__ = [
    "MetricsApiAuthError",
    "MetricsApiError",
    "MetricsApiRequestError",
    "MetricsApiResponseError",
    "MetricsApiValidationError",
]
