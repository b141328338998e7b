"""Hugging Face Transformers: ``Trainer(..., callbacks=[MetranaCallback(...)])``.

from transformers import Trainer
from metrana.integrations.transformers import MetranaCallback

callback = MetranaCallback(workspace_name="me", project_name="gpt2", run_name="baseline")
Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()
"""

from __future__ import annotations

from typing import Any

from ._common import LazyRun, Metrics, jsonable, require

__all__ = ["MetranaCallback"]

_TrainerCallback: Any = require("transformers", "transformers", "transformers").TrainerCallback


def metric_name(key: str) -> str:
    """The name the Trainer's own trackers give a key of its logs: ``eval_loss`` is
    ``eval/loss``, ``test_...`` is ``test/...``, any other key ``train/<key>``."""
    for prefix in ("eval", "test"):
        if key.startswith(f"{prefix}_"):
            return f"{prefix}/{key[len(prefix) + 1 :]}"
    return f"train/{key}"


class MetranaCallback(_TrainerCallback):  # type: ignore[misc]
    """A ``transformers.TrainerCallback`` that records a ``Trainer``'s logs into a Metrana run.

    ``MetranaCallback(workspace_name, project_name, run_name, *, rank_zero_only=True,
    **init_kwargs)``: ``init_kwargs`` are the other arguments of ``metrana.init()``
    (``config=``, ``ingestion_url=``, strategies...); ``close_strategy`` defaults to
    ``CompleteAll``.

    - ``on_train_begin`` opens the run with ``config`` plus ``training_args`` (the
      ``TrainingArguments``, as ``to_dict()`` gives them) and ``model_config`` (the model's
      config) as its metadata.
    - ``on_log`` logs every number of the logs dict at ``state.global_step``, named as the
      Trainer's own trackers name them: ``train/loss``, ``train/learning_rate``,
      ``eval/loss``...
    - ``on_train_end`` closes the run, once its points are stored (the run is then marked
      ``done``).
    - Under ``torchrun``, only the world's process zero logs (``rank_zero_only=True``); with
      ``rank_zero_only=False`` every process logs, each with the label ``rank`` (its
      ``process_index``).

    If this process already has a run (``metrana.init()``), the callback records into it.
    """

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
        self._metrics = Metrics(rename=metric_name)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Open the run, with the training arguments and the model's config as metadata."""
        if not self._logs_here(state):
            return
        config: dict[str, Any] = {"training_args": jsonable(args.to_dict())}
        model_config = getattr(kwargs.get("model"), "config", None)
        if model_config is not None and hasattr(model_config, "to_dict"):
            config["model_config"] = jsonable(model_config.to_dict())
        self._run.add_config(config)
        self._run.open()

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        """Log the numbers of ``logs`` at ``state.global_step``."""
        if not logs or not self._logs_here(state):
            return
        self._run.open()
        labels = None if self._rank_zero_only else {"rank": str(args.process_index)}
        self._metrics.log(logs, int(state.global_step), labels)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Close the run this callback opened, once its points are stored."""
        if self._logs_here(state):
            self._run.finish()

    def _logs_here(self, state: Any) -> bool:
        return not self._rank_zero_only or bool(state.is_world_process_zero)
