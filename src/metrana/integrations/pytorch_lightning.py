"""PyTorch Lightning under its older package name, ``pytorch_lightning``.

from pytorch_lightning import Trainer
from metrana.integrations.pytorch_lightning import MetranaLogger

logger = MetranaLogger(workspace_name="me", project_name="mnist", run_name="baseline")
Trainer(logger=logger, max_epochs=3).fit(model, data)
"""

from __future__ import annotations

from typing import Any

from ._common import require
from ._lightning import LoggerMixin

__all__ = ["MetranaLogger"]

_PACKAGE = ("pytorch-lightning", "pytorch_lightning")
_Logger: Any = require("pytorch_lightning.loggers", *_PACKAGE).Logger
_rank_zero = require("pytorch_lightning.utilities.rank_zero", *_PACKAGE)


class MetranaLogger(LoggerMixin, _Logger):  # type: ignore[misc]
    """:class:`metrana.integrations.lightning.MetranaLogger`, the same in every respect, on
    ``pytorch_lightning.loggers.Logger``."""

    rank_source = _rank_zero.rank_zero_only
