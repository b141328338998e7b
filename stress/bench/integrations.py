"""``integration_overhead``: what the Lightning logger and the Transformers callback add to a
training step, against the same training without them (and, for Lightning, beside a logger
that does nothing, which is what Lightning itself spends on any logger, and its built-in
``CSVLogger``). Each framework in a fresh spawned process; the arms interleaved, each
run a real ``fit``/``train`` of a tiny CPU model logging at every step; the time per step is
taken between step ``warmup`` and the last (so ``init()`` and the dispatcher's start, at the
first metric, are not in it), and the figure is the median over the runs."""

from __future__ import annotations

import tempfile
import time
from typing import Any

from .common import PROJECT, WORKSPACE, median, unique_run_name
from .processes import ask_child

WARMUP = 10


def _per_step_us(times: list[tuple[float, float]]) -> tuple[float, float]:
    """Wall and CPU µs per step from ``(perf_counter(), process_time())`` at the end of every
    step, after the warm-up."""
    start = min(WARMUP, len(times) - 2)
    steps = len(times) - 1 - start
    wall = (times[-1][0] - times[start][0]) / steps * 1e6
    cpu = (times[-1][1] - times[start][1]) / steps * 1e6
    return round(wall, 1), round(cpu, 1)


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _lightning_child(conn: Any, steps: int, repeat: int) -> None:
    try:
        import lightning.pytorch as L
        import torch
        from lightning.pytorch.loggers import CSVLogger

        from metrana.integrations.lightning import MetranaLogger
    except ImportError as error:
        conn.send({"skipped": f"not installed: {error}"})
        return
    torch.set_num_threads(1)

    class Model(L.LightningModule):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(8, 1)

        def training_step(self, batch: Any, index: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    class Timer(L.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.times: list[tuple[float, float]] = []

        def on_train_batch_end(self, *args: Any) -> None:
            self.times.append(_now())

    class NullLogger(L.loggers.Logger):  # type: ignore[misc]
        """What Lightning spends on any logger: this one does nothing."""

        name, version = "null", "0"

        def log_metrics(self, metrics: Any, step: Any = None) -> None:
            pass

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            pass

    x = torch.randn(steps * 4, 8)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4
    )
    scratch = tempfile.mkdtemp(prefix="metrana-bench-csv-")
    loggers = {
        "no logger": lambda: False,
        "a logger that does nothing": NullLogger,
        "MetranaLogger": lambda: MetranaLogger(WORKSPACE, PROJECT, unique_run_name("lightning")),
        "CSVLogger": lambda: CSVLogger(scratch),
    }
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in loggers}
    for turn in range(repeat):
        names = list(loggers)
        for name in names[turn % 4 :] + names[: turn % 4]:  # each arm first in turn
            timer = Timer()
            L.Trainer(
                max_steps=steps,
                logger=loggers[name](),
                callbacks=[timer],
                log_every_n_steps=1,
                accelerator="cpu",
                devices=1,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                default_root_dir=scratch,
            ).fit(Model(), data)
            runs[name].append(_per_step_us(timer.times))
    conn.send(runs)


def _transformers_child(conn: Any, steps: int, repeat: int) -> None:
    try:
        import torch
        import transformers as hf

        from metrana.integrations.transformers import MetranaCallback
    except ImportError as error:
        conn.send({"skipped": f"not installed: {error}"})
        return
    torch.set_num_threads(1)
    hf.logging.set_verbosity_error()

    class Timer(hf.TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.times: list[tuple[float, float]] = []

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            self.times.append(_now())

    config = hf.GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=64, n_positions=16)
    tokens = torch.randint(0, 64, (steps * 4, 8))
    data = [{"input_ids": row, "labels": row} for row in tokens]
    scratch = tempfile.mkdtemp(prefix="metrana-bench-hf-")
    callbacks = {
        "no callback": lambda: [],
        "MetranaCallback": lambda: [
            MetranaCallback(WORKSPACE, PROJECT, unique_run_name("transformers"))
        ],
    }
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in callbacks}
    for turn in range(repeat):
        names = list(callbacks)
        for name in names[turn % 2 :] + names[: turn % 2]:
            timer = Timer()
            trainer = hf.Trainer(
                model=hf.GPT2LMHeadModel(config),
                args=hf.TrainingArguments(
                    output_dir=scratch,
                    max_steps=steps,
                    logging_steps=1,
                    per_device_train_batch_size=4,
                    report_to="none",
                    use_cpu=True,
                    save_strategy="no",
                    disable_tqdm=True,
                ),
                train_dataset=data,
                callbacks=[timer, *callbacks[name]()],
            )
            trainer.remove_callback(hf.trainer_callback.PrinterCallback)  # prints every log
            trainer.train()
            runs[name].append(_per_step_us(timer.times))
    conn.send(runs)


def _figure(framework: str, baseline: str, runs: dict[str, Any], steps: int) -> dict[str, Any]:
    """Medians per arm, wall and CPU time of the training process, and each arm's difference
    from ``baseline``."""
    what = f"{framework}: µs per training step, logging every step"
    if "skipped" in runs:
        return {"figure": "integration_overhead", "what": what, "note": runs["skipped"]}
    figure: dict[str, Any] = {"figure": "integration_overhead", "what": what, "steps": steps}
    for index, clock in enumerate(("wall", "cpu")):
        us = {
            name: round(median([run[index] for run in values]), 1) for name, values in runs.items()
        }
        figure[f"{clock}_us_per_step"] = us
        figure[f"{clock}_overhead_us"] = {
            name: round(value - us[baseline], 1) for name, value in us.items() if name != baseline
        }
    figure["runs"] = runs
    return figure


def bench_integrations(steps: int, repeat: int) -> list[dict[str, Any]]:
    """The Lightning logger and the Transformers callback, each against no logger."""
    timeout = 120 + steps * repeat * 0.1
    lightning = ask_child(_lightning_child, (steps, repeat), timeout, "lightning overhead")
    transformers = ask_child(_transformers_child, (steps, repeat), timeout, "hf overhead")
    return [
        _figure("Lightning", "no logger", lightning, steps),
        _figure("Transformers", "no callback", transformers, steps),
    ]
