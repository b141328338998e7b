"""PyTorch Lightning (the ``lightning`` package): ``Trainer(logger=MetranaLogger(...))``.

    from lightning.pytorch import Trainer
    from metrana.integrations.lightning import MetranaLogger

    logger = MetranaLogger(workspace_name="me", project_name="mnist", run_name="baseline")
    Trainer(logger=logger, max_epochs=3).fit(model, data)

For the older package name, ``pytorch_lightning``: :mod:`metrana.integrations.pytorch_lightning`.
"""

from __future__ import annotations

from typing import Any

from ._common import require
from ._lightning import LoggerMixin

__all__ = ["MetranaLogger"]

_Logger: Any = require("lightning.pytorch.loggers", "lightning", "lightning").Logger
_rank_zero = require("lightning.pytorch.utilities.rank_zero", "lightning", "lightning")


class MetranaLogger(LoggerMixin, _Logger):  # type: ignore[misc]
    """A Lightning logger that records into a Metrana run.

    ``MetranaLogger(workspace_name, project_name, run_name, *, rank_zero_only=True,
    **init_kwargs)``: ``init_kwargs`` are the other arguments of ``metrana.init()``
    (``config=``, ``ingestion_url=``, strategies...); ``close_strategy`` defaults to
    ``CompleteAll``. The run opens at the first metric, with the hyperparameters Lightning
    gave ``log_hyperparams`` by then (``save_hyperparameters()``, flattened with ``/``) merged
    into ``config`` as the run's metadata. If this process already has a run
    (``metrana.init()``), the logger records into that one.

    - ``log_metrics(metrics, step)``: every number, at Lightning's global step, on the
      ``ML_STEP`` scale.
    - Under DDP, only rank zero logs (``rank_zero_only=True``, as Lightning's loggers do); with
      ``rank_zero_only=False`` every rank logs, each with the label ``rank``.
    - ``name`` is the project and ``version`` the run's name (checkpoints go to
      ``default_root_dir/NAME/VERSION/checkpoints``).
    - ``finalize(status)`` closes the run the logger opened, once its points are stored (the
      run is then marked ``done``); a later ``validate``/``test`` reopens it.
    """

    rank_source = _rank_zero.rank_zero_only
