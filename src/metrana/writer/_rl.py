"""Helpers for reinforcement learning: episode metrics, environment-step metrics, and one step
of a vector of environments at once.

``log_rl_episode("return", 200.0, episode=17, rl_step=34_000, env_id=3)`` logs ``return`` on
the EPISODE scale at step 17, in the series of ``environment_id=3``. The other counters are
recorded beside it as their own series at the same step (``return/rl_step`` = 34000), not as
labels: a label that changes with every point would make every point a series of its own.
"""

from __future__ import annotations

import threading
from typing import Any

from .._enums import StandardMetricScale
from .._logging import logger
from ._run import current_or_forked_writer, log

__all__ = [
    "log_rl_environment_step",
    "log_rl_episode",
    "log_vector_env",
]

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def _warn_once(helper: str, missing: list[str]) -> None:
    key = (helper, ",".join(missing))
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(
        "%s called without %s: pass them so that points from several environments and "
        "learner steps can be told apart (warned once)",
        helper,
        " and ".join(missing),
    )


def _with_env(labels: dict[str, str] | None, env_id: Any) -> dict[str, str] | None:
    if env_id is None:
        return labels
    return {**(labels or {}), "environment_id": str(env_id)}


def log_rl_episode(
    metric_name: str,
    value: float | int,
    episode: int | None = None,
    rl_step: int | None = None,
    env_id: Any = None,
    labels: dict[str, str] | None = None,
    timestamp: int | None = None,
) -> None:
    """Log a per-episode metric on the EPISODE scale, at step ``episode`` (auto-incremented
    when omitted), labelled with ``environment_id``; ``rl_step`` (the learner's step when the
    episode ended) is recorded as ``<metric_name>/rl_step`` at the same step."""
    missing = [name for name, given in (("episode", episode), ("rl_step", rl_step),
               ("env_id", env_id)) if given is None]  # fmt: skip
    if missing:
        _warn_once("log_rl_episode", missing)
    series_labels = _with_env(labels, env_id)
    scale = StandardMetricScale.EPISODE
    log(metric_name, value, scale, episode, series_labels, timestamp)
    if rl_step is not None:
        at = episode if episode is not None else _last(metric_name, scale, series_labels)
        log(f"{metric_name}/rl_step", rl_step, scale, at, series_labels, timestamp)


def log_rl_environment_step(
    metric_name: str,
    value: float | int,
    env_step: int | None = None,
    episode: int | None = None,
    rl_step: int | None = None,
    env_id: Any = None,
    labels: dict[str, str] | None = None,
    timestamp: int | None = None,
) -> None:
    """Log a per-environment-step metric on the ENVIRONMENT_STEP scale, at step ``env_step``
    (auto-incremented when omitted), labelled with ``environment_id``; ``episode`` and
    ``rl_step`` are recorded as ``<metric_name>/episode`` and ``<metric_name>/rl_step`` at
    the same step."""
    missing = [name for name, given in (("env_step", env_step), ("episode", episode),
               ("rl_step", rl_step), ("env_id", env_id)) if given is None]  # fmt: skip
    if missing:
        _warn_once("log_rl_environment_step", missing)
    series_labels = _with_env(labels, env_id)
    scale = StandardMetricScale.ENVIRONMENT_STEP
    log(metric_name, value, scale, env_step, series_labels, timestamp)
    at = env_step
    for suffix, counter in (("episode", episode), ("rl_step", rl_step)):
        if counter is not None:
            if at is None:
                at = _last(metric_name, scale, series_labels)
            log(f"{metric_name}/{suffix}", counter, scale, at, series_labels, timestamp)


def log_vector_env(
    metric_name: str,
    values: Any,
    step: int | None = None,
    label: str = "environment_id",
    scale: Any = StandardMetricScale.ENVIRONMENT_STEP,
    labels: dict[str, str] | None = None,
    timestamp: int | None = None,
) -> None:
    """Log one step of a vectorised environment: ``values[i]`` (a 1-D array, tensor, list or
    tuple, one value per environment) goes to the series ``(metric_name, scale, labels +
    {label: str(i)})`` at ``step``, so ``log_vector_env("reward", rewards, step=t)`` stores
    environment 3's reward where ``log_rl_environment_step("reward", r, env_step=t,
    env_id=3)`` would.

    The call is one ring record, whatever the number of environments; values are checked as
    a whole (NaN and infinities are kept; bools and out-of-range ints are refused). Without
    ``step``, each series' next step is used (one step for all when they agree).

    Raises:
        MetranaInvalidMetricError / MetranaInvalidMetricTypeError: bad input; nothing is logged.
    """
    writer = current_or_forked_writer()
    writer.log_vector_env(metric_name, values, step, label, scale, labels, timestamp)


def _last(metric_name: str, scale: Any, labels: dict[str, str] | None) -> int | None:
    from ._run import get_last_step

    return get_last_step(metric_name, scale, labels)
