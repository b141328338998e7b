"""A tiny Lightning job, for the Lightning tests: a linear model fitted for a few steps with a
``MetranaLogger`` beside a logger that records what Lightning reported to it.

In the test process: :func:`fit`. As a script, the DDP job of the tests (``python
lightning_job.py REPORT_DIR``; Lightning starts rank 1 by running the same command): two fits
under ``strategy="ddp", devices=2``, the first with ``rank_zero_only=False`` (run
``ddp-every-rank``), the second with the default (run ``ddp-rank-zero``). Each rank writes what
its recorder saw to ``REPORT_DIR/<run>-<rank>.json``.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

HPARAMS = {"lr": 0.1, "hidden": 4, "optimizer": {"name": "sgd", "momentum": 0.0}}
# what the run's metadata holds: the logger's config=, then the hyperparameters, flattened
CONFIG = {"seed": 0}
METADATA = {**CONFIG, "lr": 0.1, "hidden": 4, "optimizer/name": "sgd", "optimizer/momentum": 0.0}


def fit(package: str, run_name: str, calls: list[Any], devices: int = 1, **options: Any) -> None:
    """Fit for 2 epochs of 4 steps with ``MetranaLogger(..., **options)`` of ``package``
    (``lightning.pytorch`` or ``pytorch_lightning``); append to ``calls`` every
    ``(metrics, step)`` Lightning gave its loggers."""
    L = importlib.import_module(package)
    integration = "lightning" if package == "lightning.pytorch" else package
    logger_class = importlib.import_module(f"metrana.integrations.{integration}").MetranaLogger

    class Model(L.LightningModule):
        def __init__(self, **hparams: Any) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Linear(3, 1)

        def training_step(self, batch: Any, index: int) -> Any:
            x, y = batch
            loss = nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch: Any, index: int) -> None:
            x, y = batch
            self.log("val_loss", nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    class Recorder(L.loggers.Logger):
        name, version = "recorder", "0"

        def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
            calls.append((dict(metrics), step))

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            pass

    torch.manual_seed(0)
    x = torch.randn(32, 3)
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8 // devices)
    logger = logger_class("default", "proj", run_name, config=CONFIG, **options)
    trainer = L.Trainer(
        max_epochs=2,
        logger=[logger, Recorder()],
        log_every_n_steps=1,
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Model(**HPARAMS), data, data)


def main(report_dir: Path) -> None:
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    for run_name, every_rank in (("ddp-every-rank", True), ("ddp-rank-zero", False)):
        calls: list[Any] = []
        fit("lightning.pytorch", run_name, calls, devices=2, rank_zero_only=not every_rank)
        path = report_dir / f"{run_name}-{rank_zero_only.rank}.json"
        path.write_text(json.dumps(calls))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
