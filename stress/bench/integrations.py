"""``integration_overhead``: what the Lightning logger and the Transformers callback add to a
training step, against the same training without them.

Each framework in a fresh spawned process, the arms interleaved (each arm first in turn), each
run a real ``fit``/``train`` of a tiny CPU model that logs at every step. The time per step,
wall and CPU time of the training process, is taken between step ``WARMUP`` and the last (so
``init()`` and the dispatcher's start, at the first metric, are not in it); a figure is the
median over the runs. Beside the integration itself:

- Lightning with a logger that does nothing (what Lightning spends on any logger) and with its
  built-in ``CSVLogger``;
- the integration with the run's dispatcher paused (SIGSTOP from the first step to the end of
  training; the ring holds every point): the training process's own cost, without the
  dispatcher working on the other core meanwhile;
- the dispatcher's CPU time per training step during the integration's runs.
"""

from __future__ import annotations

import contextlib
import json
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from .common import PROJECT, WORKSPACE, median, unique_run_name
from .processes import ask_child, cpu_sum

WARMUP = 10
PAUSED = " (dispatcher paused)"


def _run_dispatcher() -> psutil.Process | None:
    """The dispatcher of this process's run (its session's ``dispatcher.json``), or None
    before the run is open."""
    import metrana

    with contextlib.suppress(metrana.MetranaError, OSError, ValueError, psutil.Error):
        info = Path(metrana.stats().session.session_dir) / "dispatcher.json"
        return psutil.Process(json.loads(info.read_bytes())["pid"])
    return None


class Clock:
    """The end of every step of one run, ``(perf_counter(), process_time())``; with a Metrana
    run, the dispatcher's CPU time over the same steps, or the dispatcher paused."""

    def __init__(self, metrana: bool = False, pause: bool = False) -> None:
        self.times: list[tuple[float, float]] = []
        self.metrana, self.pause = metrana, pause
        self.dispatcher: psutil.Process | None = None
        self.dispatcher_cpu: list[float] = []

    def step(self) -> None:
        """At the end of each step."""
        self.times.append((time.perf_counter(), time.process_time()))
        if self.metrana and self.dispatcher is None and len(self.times) <= WARMUP:
            self.dispatcher = _run_dispatcher()  # once the run opened, at the first metric
            if self.pause and self.dispatcher is not None:
                self.dispatcher.send_signal(signal.SIGSTOP)
        if len(self.times) == WARMUP + 1 and self.dispatcher is not None:
            self.dispatcher_cpu.append(cpu_sum([self.dispatcher]))

    def end(self) -> None:
        """At the end of training, before the run closes."""
        if self.dispatcher is not None:
            self.dispatcher_cpu.append(cpu_sum([self.dispatcher]))
            if self.pause:
                self.dispatcher.send_signal(signal.SIGCONT)

    def per_step_us(self) -> list[float]:
        """Wall, CPU and (0 if none) dispatcher CPU µs per step after the warm-up."""
        start = min(WARMUP, len(self.times) - 2)
        steps = len(self.times) - 1 - start
        wall = (self.times[-1][0] - self.times[start][0]) / steps * 1e6
        cpu = (self.times[-1][1] - self.times[start][1]) / steps * 1e6
        spent = self.dispatcher_cpu
        dispatcher = (spent[-1] - spent[0]) / steps * 1e6 if len(spent) == 2 else 0.0
        return [round(wall, 1), round(cpu, 1), round(dispatcher, 1)]


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
        def __init__(self, clock: Clock) -> None:
            self.clock = clock

        def on_train_batch_end(self, *args: Any) -> None:
            self.clock.step()

        def on_train_end(self, *args: Any) -> None:
            self.clock.end()

    class NullLogger(L.loggers.Logger):  # type: ignore[misc]
        name, version = "null", "0"

        def log_metrics(self, metrics: Any, step: Any = None) -> None:
            pass

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            pass

    def metrana() -> Any:
        return MetranaLogger(WORKSPACE, PROJECT, unique_run_name("lightning"))

    x = torch.randn(steps * 4, 8)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4
    )
    scratch = tempfile.mkdtemp(prefix="metrana-bench-lightning-")
    loggers = {
        "no logger": lambda: False,
        "a logger that does nothing": NullLogger,
        "MetranaLogger": metrana,
        "MetranaLogger" + PAUSED: metrana,
        "CSVLogger": lambda: CSVLogger(scratch),
    }

    def run(name: str) -> list[float]:
        clock = Clock(metrana=name.startswith("Metrana"), pause=name.endswith(PAUSED))
        L.Trainer(
            max_steps=steps,
            logger=loggers[name](),
            callbacks=[Timer(clock)],
            log_every_n_steps=1,
            accelerator="cpu",
            devices=1,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=scratch,
        ).fit(Model(), data)
        return clock.per_step_us()

    conn.send(_interleaved(list(loggers), repeat, run))


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
        def __init__(self, clock: Clock) -> None:
            self.clock = clock

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            self.clock.step()

        def on_train_end(self, *args: Any, **kwargs: Any) -> None:
            self.clock.end()  # called before MetranaCallback's, which closes the run

    config = hf.GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=64, n_positions=16)
    tokens = torch.randint(0, 64, (steps * 4, 8))
    data = [{"input_ids": row, "labels": row} for row in tokens]
    scratch = tempfile.mkdtemp(prefix="metrana-bench-hf-")
    arms = ["no callback", "MetranaCallback", "MetranaCallback" + PAUSED]

    def run(name: str) -> list[float]:
        clock = Clock(metrana=name != arms[0], pause=name.endswith(PAUSED))
        callbacks: list[Any] = [Timer(clock)]
        if clock.metrana:
            callbacks.append(MetranaCallback(WORKSPACE, PROJECT, unique_run_name("hf")))
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
            callbacks=callbacks,
        )
        trainer.remove_callback(hf.trainer_callback.PrinterCallback)  # prints every log
        trainer.train()
        return clock.per_step_us()

    conn.send(_interleaved(arms, repeat, run))


def _interleaved(arms: list[str], repeat: int, run: Any) -> dict[str, list[list[float]]]:
    """``repeat`` rounds of every arm, each arm first in turn."""
    runs: dict[str, list[list[float]]] = {name: [] for name in arms}
    for turn in range(repeat):
        shift = turn % len(arms)
        for name in arms[shift:] + arms[:shift]:
            runs[name].append(run(name))
    return runs


def _figure(framework: str, runs: dict[str, Any], steps: int) -> dict[str, Any]:
    """Medians per arm (wall and CPU time of the training process), each arm's difference from
    the first arm (no logger), and the dispatcher's CPU per step."""
    what = f"{framework}: µs per training step, logging every step"
    if "skipped" in runs:
        return {"figure": "integration_overhead", "what": what, "note": runs["skipped"]}
    figure: dict[str, Any] = {"figure": "integration_overhead", "what": what, "steps": steps}
    baseline = next(iter(runs))
    for index, clock in enumerate(("wall", "cpu")):
        us = {
            name: round(median([run[index] for run in values]), 1) for name, values in runs.items()
        }
        figure[f"{clock}_us_per_step"] = us
        figure[f"{clock}_overhead_us"] = {
            name: round(value - us[baseline], 1) for name, value in us.items() if name != baseline
        }
    figure["dispatcher_cpu_us_per_step"] = {
        name: round(median([run[2] for run in values]), 1)
        for name, values in runs.items()
        if name.startswith("Metrana") and not name.endswith(PAUSED)
    }
    figure["runs"] = runs
    return figure


def bench_integrations(steps: int, repeat: int) -> list[dict[str, Any]]:
    """The Lightning logger and the Transformers callback, each against no logger."""
    timeout = 120 + steps * repeat * 0.1
    lightning = ask_child(_lightning_child, (steps, repeat), timeout, "lightning overhead")
    transformers = ask_child(_transformers_child, (steps, repeat), timeout, "hf overhead")
    return [
        _figure("Lightning", lightning, steps),
        _figure("Transformers", transformers, steps),
    ]
