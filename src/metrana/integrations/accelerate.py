"""Hugging Face Accelerate: ``Accelerator(log_with=MetranaTracker(...))``.

from accelerate import Accelerator
from metrana.integrations.accelerate import MetranaTracker

tracker = MetranaTracker(workspace_name="me", project_name="lm", run_name="baseline")
accelerator = Accelerator(log_with=tracker)
accelerator.init_trackers("lm", config={"lr": 3e-4})
accelerator.log({"loss": loss}, step=step)
accelerator.end_training()
"""

from __future__ import annotations

from typing import Any

from .. import _enums
from ._common import LazyRun, Metrics, jsonable, require

__all__ = ["MetranaTracker"]

_GeneralTracker: Any = require("accelerate.tracking", "accelerate", "accelerate").GeneralTracker


class MetranaTracker(_GeneralTracker):  # type: ignore[misc]
    """An Accelerate ``GeneralTracker`` that records into a Metrana run.

    ``MetranaTracker(workspace_name, project_name, run_name, **init_kwargs)``: ``init_kwargs``
    are the other arguments of ``metrana.init()`` (``config=``, ``ingestion_url=``,
    strategies...); ``close_strategy`` defaults to ``CompleteAll``. As every Accelerate
    tracker, it runs on the main process only (``Accelerator.log`` is called there); for
    metrics of every process, call ``metrana.log()`` with a ``rank`` label.

    - ``store_init_configuration(values)`` (``init_trackers(..., config=values)``) opens the
      run with ``values`` merged into ``config`` as its metadata.
    - ``log(values, step)``: every number of ``values`` at ``step`` (None: each series' next
      step), on the ``ML_STEP`` scale.
    - ``finish()`` (``end_training()``) closes the run, once its points are stored.
    - ``tracker`` is the ``metrana`` module.
    """

    name = "metrana"
    requires_logging_directory = False
    main_process_only = True

    def __init__(
        self, workspace_name: str, project_name: str, run_name: str, **init_kwargs: Any
    ) -> None:
        super().__init__()
        self._run = LazyRun(workspace_name, project_name, run_name, **init_kwargs)
        self._metrics = Metrics(_enums.StandardMetricScale.ML_STEP.value)

    @property
    def tracker(self) -> Any:
        """The ``metrana`` module: ``tracker.log(...)`` logs into the same run."""
        import metrana

        return metrana

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        """Open the run with ``values`` as (part of) its metadata."""
        self._run.add_config(jsonable(values))
        self._run.open()

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        """Log the numbers of ``values`` at ``step``."""
        self._run.open()
        self._metrics.log(values, step)

    def finish(self) -> None:
        """Close the run this tracker opened, once its points are stored."""
        self._run.finish()
