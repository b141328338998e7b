"""Errors as the server answers them: an HTTP status and ``{"error": {"message", "details":
"code=<machine code>"}}``, the Syvain API's error body."""

from __future__ import annotations

import msgspec
from starlette.responses import Response

from ..api._types import ApiErrorBody, ErrorResponse
from ..storage import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    StorageError,
    StorageRunExistsError,
)


class ApiError(Exception):
    """Raised by a handler to answer an error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = msgspec.json.encode(ErrorResponse(ApiErrorBody(message=message, details=f"code={code}")))
    return Response(body, status, headers=headers, media_type="application/json")


def from_storage(error: StorageError) -> ApiError:
    """The answer for a storage failure; an engine failure (locked, full disk) is a 503 the
    client retries, never a 500 that loses the request."""
    if isinstance(error, StorageRunExistsError):
        return ApiError(409, "run_exists", str(error))
    if isinstance(error, NotFoundError):
        return ApiError(404, "not_found", str(error))
    if isinstance(error, ConflictError):
        return ApiError(409, "conflict", str(error))
    if isinstance(error, InvalidRequestError):
        return ApiError(400, "invalid_request", str(error))
    return ApiError(503, "storage_unavailable", str(error))
