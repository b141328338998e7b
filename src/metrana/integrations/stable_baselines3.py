"""Stable-Baselines3: ``model.set_logger(configure(folder, ["stdout", "metrana"], ...))``.

from stable_baselines3 import PPO
from metrana.integrations.stable_baselines3 import configure

model = PPO("MlpPolicy", "CartPole-v1")
model.set_logger(configure(None, ["stdout", "metrana"], workspace_name="me",
                           project_name="cartpole", run_name="ppo"))
model.learn(100_000)
model.logger.close()
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .. import _enums
from ._common import LazyRun, Metrics, jsonable, require

__all__ = ["MetranaOutputFormat", "configure"]

_sb3_logger = require("stable_baselines3.common.logger", "stable-baselines3", "stable_baselines3")
_KVWriter: Any = _sb3_logger.KVWriter

FORMAT = "metrana"


class MetranaOutputFormat(_KVWriter):  # type: ignore[misc]
    """A Stable-Baselines3 output format (a ``KVWriter``) that records every dump of the
    model's logger into a Metrana run: ``rollout/ep_rew_mean``, ``train/loss``, ``time/fps``...
    each at the step SB3 dumps at (the model's ``num_timesteps``), on the ``ENVIRONMENT_STEP``
    scale. Keys recorded with ``exclude=("metrana",)`` are left out, and values that are not
    numbers (videos, figures, images) skipped; an ``HParam``'s hyperparameters join the
    run's config when they come before the run opens.

    ``MetranaOutputFormat(workspace_name=None, project_name=None, run_name=None,
    **init_kwargs)``: the run opens at the first dump, with ``metrana.init()`` and these
    arguments (``close_strategy`` defaults to ``CompleteAll``), unless this process already has
    a run, which it then records into (the names may be left out). ``close()`` (the logger's)
    closes the run it opened, once its points are stored.
    """

    def __init__(
        self,
        workspace_name: str | None = None,
        project_name: str | None = None,
        run_name: str | None = None,
        **init_kwargs: Any,
    ) -> None:
        self._run = LazyRun(workspace_name, project_name, run_name, **init_kwargs)
        self._metrics = Metrics(_enums.StandardMetricScale.ENVIRONMENT_STEP.value)

    def write(
        self,
        key_values: dict[str, Any],
        key_excluded: dict[str, tuple[str, ...]],
        step: int = 0,
    ) -> None:
        """Log the numbers of one dump at ``step``."""
        values = {}
        for key, value in key_values.items():
            if FORMAT in (key_excluded.get(key) or ()):
                continue
            if isinstance(value, _sb3_logger.HParam):
                self._run.add_config(jsonable(value.hparam_dict))
            else:
                values[key] = value
        self._run.open()
        self._metrics.log(values, int(step))

    def close(self) -> None:
        """Close the run this output format opened, once its points are stored."""
        self._run.finish()


def configure(
    folder: str | None = None,
    format_strings: Sequence[str] | None = None,
    **init_kwargs: Any,
) -> Any:
    """``stable_baselines3.common.logger.configure`` that also knows the format
    ``"metrana"``: a :class:`MetranaOutputFormat` made with ``init_kwargs`` (the names and
    other arguments of ``metrana.init()``). Without ``format_strings``, SB3's defaults
    (``$SB3_LOG_FORMAT``, else stdout, log, csv) plus ``"metrana"``."""
    if format_strings is None:
        format_strings = [*os.getenv("SB3_LOG_FORMAT", "stdout,log,csv").split(","), FORMAT]
    others = [name for name in format_strings if name and name != FORMAT]
    logger = _sb3_logger.configure(folder, others)
    if FORMAT in format_strings:
        logger.output_formats.append(MetranaOutputFormat(**init_kwargs))
    return logger
