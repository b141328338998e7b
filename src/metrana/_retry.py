"""The one retry policy, used by the REST client and the dispatcher alike.

Exponential backoff with full jitter and a cap, bounded by a budget of attempts and of time;
``Retry-After`` and the server's pacing hint are honoured (never retried sooner than asked).
"""

from __future__ import annotations

import random
import time

import msgspec

RETRYABLE_STATUSES = frozenset({408, 425, 429})
IN_PROGRESS = "idempotency_key_in_progress"  # a 409 while the first request is still running


def is_retryable(status: int, error_code: str | None = None) -> bool:
    """408, 425, 429, 5xx, and a 409 whose request is still being acted on are transient;
    everything else is an answer."""
    if status == 409:
        return error_code == IN_PROGRESS
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils  # ~10 ms to import; only an HTTP-date Retry-After needs it

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


class RetryPolicy(msgspec.Struct, frozen=True):
    """How often and how long to retry one logical request."""

    max_attempts: int = 8
    max_elapsed: float = 60.0
    base_delay: float = 0.1
    max_delay: float = 10.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1 = first retry)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        jittered = random.uniform(0.0, ceiling)
        if retry_after is not None:
            return max(retry_after, jittered)
        return jittered

    def allows(self, attempt: int, started: float, next_delay: float) -> bool:
        """Whether retry ``attempt`` after ``next_delay`` s still fits the budget."""
        if attempt >= self.max_attempts:
            return False
        return time.monotonic() - started + next_delay <= self.max_elapsed


class Pacer:
    """Spaces requests as the server asks (``pacing_seconds`` or ``Retry-After`` in its
    answers), for every sender that shares it, not just the one that was told."""

    def __init__(self) -> None:
        self._not_before = 0.0

    def hint(self, seconds: float) -> None:
        """No request before ``seconds`` from now."""
        if seconds > 0:
            self._not_before = max(self._not_before, time.monotonic() + seconds)

    def remaining(self) -> float:
        """Seconds until the server's pacing allows the next request (0 if it does now)."""
        return max(0.0, self._not_before - time.monotonic())


class RetryInterrupted(Exception):
    """A wait between attempts was cut short by a stop event (say, SIGTERM in the
    dispatcher): the request was not completed and will not be retried here."""
