"""Metrana: multiprocess-safe metrics tracking for ML and RL training.

Three calls from any process of a training job::

    import metrana
    metrana.init(workspace_name="me", project_name="mnist", run_name="baseline")
    metrana.log("loss", 0.25, step=10)
    metrana.close()
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

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
from ._rl import log_rl_environment_step, log_rl_episode
from ._run import close, flush, get_last_step, init, log, stats
from ._stats import SessionStats, Stats, WriterStats

__version__ = "0.1.0"

if _TYPE_CHECKING:
    from .api import (
        AsyncClient,
        Client,
        ComparisonMetricSeries,
        MetricsApiAuthError,
        MetricsApiError,
        MetricsApiRequestError,
        MetricsApiResponseError,
    )

# The REST client pulls in httpx; it is loaded on first use so that `import metrana` stays
# cheap in every training process.
_REST_CLIENT_NAMES = frozenset(
    {
        "AsyncClient",
        "Client",
        "ComparisonMetricSeries",
        "MetricsApiAuthError",
        "MetricsApiError",
        "MetricsApiRequestError",
        "MetricsApiResponseError",
    }
)


def __getattr__(name: str) -> _Any:
    if name in _REST_CLIENT_NAMES:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'metrana' has no attribute {name!r}")


__all__ = [
    "AsyncClient",
    "BackpressureStrategy",
    "Client",
    "CloseStrategy",
    "ComparisonMetricSeries",
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
    "MetricsApiAuthError",
    "MetricsApiError",
    "MetricsApiRequestError",
    "MetricsApiResponseError",
    "ResumeStrategy",
    "SessionStats",
    "StandardMetricScale",
    "Stats",
    "WriterStats",
    "__version__",
    "close",
    "flush",
    "get_last_step",
    "init",
    "log",
    "log_rl_environment_step",
    "log_rl_episode",
    "stats",
]
