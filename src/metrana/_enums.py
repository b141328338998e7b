"""Enumerations of the public API: metric scales, strategies and log levels.

Every setting accepts the enum member or its name (case-insensitive), e.g.
``backpressure_strategy="Block"`` or ``BackpressureStrategy.BLOCK``.
"""

from __future__ import annotations

import enum
from typing import TypeVar

__all__ = [
    "BackpressureStrategy",
    "CloseStrategy",
    "ErrorStrategy",
    "LogLevel",
    "ResumeStrategy",
    "StandardMetricScale",
]


class _NamedEnum(enum.Enum):
    """An enum whose members are also known by a display name (their value)."""

    @classmethod
    def accepted(cls) -> str:
        return ", ".join(str(m.value) for m in cls)


E = TypeVar("E", bound=_NamedEnum)


def parse_enum(cls: type[E], value: object) -> E | None:
    """Return the member of ``cls`` named by ``value`` (member, name or value), else None."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, str):
        return None
    wanted = value.strip().replace("-", "_").lower()
    for member in cls:
        if wanted in (member.name.lower(), str(member.value).lower()):
            return member
    return None


class StandardMetricScale(_NamedEnum):
    """The axis a metric's steps count along."""

    ML_STEP = "ML_STEP"
    EPISODE = "EPISODE"
    ENVIRONMENT_STEP = "ENVIRONMENT_STEP"


class BackpressureStrategy(_NamedEnum):
    """What ``log()`` does when this process's ring is full."""

    DROP_NEW = "DropNew"
    BLOCK = "Block"
    RAISE = "Raise"


class ErrorStrategy(_NamedEnum):
    """How delivery errors found by the dispatcher surface in writer processes."""

    WARN = "Warn"
    SILENT = "Silent"
    RAISE_ON_LOG = "RaiseOnLog"
    RAISE_ON_CLOSE = "RaiseOnClose"


class CloseStrategy(_NamedEnum):
    """What ``close()`` does with points this process logged but that are not yet delivered."""

    COMPLETE_PENDING = "CompletePending"
    IMMEDIATE = "Immediate"
    COMPLETE_ALL = "CompleteAll"


class ResumeStrategy(_NamedEnum):
    """Whether ``init()`` may resume a run that already exists."""

    ALLOW = "Allow"
    NEVER = "Never"


class LogLevel(_NamedEnum):
    """Level of the library's own ``metrana`` logger."""

    SUCCESS = "Success"
    TRACE = "Trace"
    DEBUG = "Debug"
    INFO = "Info"
    WARN = "Warn"
    ERROR = "Error"
    CRITICAL = "Critical"
    OFF = "Off"
