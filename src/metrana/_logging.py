"""The library's own logging: the stdlib logger ``metrana`` with TRACE and SUCCESS levels."""

from __future__ import annotations

import logging

from ._enums import LogLevel

TRACE = 5
SUCCESS = 25
OFF = logging.CRITICAL + 10

logging.addLevelName(TRACE, "TRACE")
logging.addLevelName(SUCCESS, "SUCCESS")

logger = logging.getLogger("metrana")

_LEVELS = {
    LogLevel.TRACE: TRACE,
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.INFO: logging.INFO,
    LogLevel.SUCCESS: SUCCESS,
    LogLevel.WARN: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
    LogLevel.CRITICAL: logging.CRITICAL,
    LogLevel.OFF: OFF,
}

_handler: logging.Handler | None = None


def level_number(level: LogLevel) -> int:
    """The stdlib logging level number of a :class:`LogLevel`."""
    return _LEVELS[level]


def configure(level: LogLevel) -> None:
    """Set the ``metrana`` logger's level and give it a stderr handler if it has none.

    The handler is only added when neither the logger nor the root logger has one, so an
    application that configures logging itself keeps full control.
    """
    global _handler
    logger.setLevel(_LEVELS[level])
    if _handler is None and not logger.handlers and not logging.getLogger().handlers:
        _handler = logging.StreamHandler()
        _handler.setFormatter(logging.Formatter("metrana %(levelname)s: %(message)s"))
        logger.addHandler(_handler)
