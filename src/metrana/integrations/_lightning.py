"""The Lightning logger, written once for both package names: the modules ``lightning`` and
``pytorch_lightning`` of ``metrana.integrations`` bind it to their package's ``Logger``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._common import LazyRun, Metrics, flatten

__all__: list[str] = []  # internal: see metrana.integrations.lightning


class LoggerMixin:
    """Everything of ``MetranaLogger`` but its base class (see
    :class:`metrana.integrations.lightning.MetranaLogger`)."""

    # The package's rank_zero_only function: Lightning keeps this process's global rank in its
    # ``rank`` attribute (set by the strategy before the first hook that logs).
    rank_source: Any = None

    def __init__(
        self,
        workspace_name: str,
        project_name: str,
        run_name: str,
        *,
        rank_zero_only: bool = True,
        **init_kwargs: Any,
    ) -> None:
        super().__init__()
        self._rank_zero_only = rank_zero_only
        self._run = LazyRun(workspace_name, project_name, run_name, **init_kwargs)
        self._metrics = Metrics()

    @property
    def name(self) -> str:
        """The project (Lightning's experiment name: checkpoints go to ``NAME/VERSION/``)."""
        return str(self._run.init_kwargs["project_name"])

    @property
    def version(self) -> str:
        """The run's name."""
        return str(self._run.init_kwargs["run_name"])

    @property
    def rank(self) -> int:
        """This process's global rank, as Lightning knows it."""
        return int(getattr(self.rank_source, "rank", 0) or 0)

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Add ``params`` (a dict or ``argparse.Namespace``, nested ones flattened with
        ``/``) to the config the run is opened with: the run's metadata."""
        if self._logs_here():
            self._run.add_config(flatten(params))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log every number of ``metrics`` at ``step`` (Lightning's global step)."""
        if self._logs_here():
            self._run.open()
            labels = None if self._rank_zero_only else {"rank": str(self.rank)}
            self._metrics.log(metrics, step, labels)

    def finalize(self, status: str) -> None:
        """End of ``fit``/``validate``/``test`` (``status`` success, failed or finished): close
        the run this logger opened, once its points are stored; a later stage opens it again."""
        if self._logs_here():
            self._run.finish()

    def _logs_here(self) -> bool:
        return not self._rank_zero_only or self.rank == 0
