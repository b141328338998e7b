"""Metrana: multiprocess-safe metrics tracking for ML and RL training.

Three calls from any process of a training job::

    import metrana
    metrana.init(workspace_name="me", project_name="mnist", run_name="baseline")
    metrana.log("loss", 0.25, step=10)
    metrana.close()
"""

from __future__ import annotations

from ._enums import (
    BackpressureStrategy,
    CloseStrategy,
    ErrorStrategy,
    LogLevel,
    ResumeStrategy,
    StandardMetricScale,
)
from ._errors import (
    MetranaAlreadyInitializedError,
    MetranaConfigError,
    MetranaCorruptRingError,
    MetranaDeliveryError,
    MetranaDispatcherError,
    MetranaError,
    MetranaEventQueueFullError,
    MetranaInvalidMetricError,
    MetranaInvalidMetricTypeError,
    MetranaMissingApiKeyError,
    MetranaNotInitializedError,
    MetranaRunExistsError,
    MetranaTimeoutError,
)
from ._run import close, flush, init, log, stats
from ._stats import SessionStats, Stats, WriterStats

__version__ = "0.1.0"

__all__ = [
    "BackpressureStrategy",
    "CloseStrategy",
    "ErrorStrategy",
    "LogLevel",
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
    "ResumeStrategy",
    "SessionStats",
    "StandardMetricScale",
    "Stats",
    "WriterStats",
    "__version__",
    "close",
    "flush",
    "init",
    "log",
    "stats",
]
