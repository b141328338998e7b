"""A tiny Transformers job, for the Transformers tests: a 1-layer GPT-2 built from a config (no
download) trained for 6 steps, logging every 2 and evaluating every 3, with a
``MetranaCallback`` beside a callback that records what the Trainer logged.

In the test process: :func:`train`. As a script under ``torchrun``:
``python -m torch.distributed.run --nproc_per_node 2 transformers_job.py REPORT_DIR``, every
process logging (``rank_zero_only=False``) into run ``torchrun`` and writing what it recorded
to ``REPORT_DIR/torchrun-<process index>.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

from metrana.integrations.transformers import MetranaCallback

MODEL = {"n_layer": 1, "n_head": 2, "n_embd": 8, "vocab_size": 32, "n_positions": 16}
CONFIG = {"task": "lm"}


class Recorder(TrainerCallback):
    """Every ``(logs, global_step)`` the Trainer logged."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], int]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        self.calls.append((dict(logs), state.global_step))


def train(run_name: str, output_dir: Path, **options: Any) -> tuple[Recorder, Any]:
    """Train with ``MetranaCallback("default", "proj", run_name, config=CONFIG, **options)``;
    answer the recorder and the ``Trainer``."""
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**MODEL, bos_token_id=0, eos_token_id=0))
    tokens = torch.randint(0, 32, (32, 8), generator=torch.Generator().manual_seed(1))
    data = [{"input_ids": row, "labels": row} for row in tokens]
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=6,
        logging_steps=2,
        eval_strategy="steps",
        eval_steps=3,
        per_device_train_batch_size=4,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    recorder = Recorder()
    callback = MetranaCallback("default", "proj", run_name, config=CONFIG, **options)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=data,
        eval_dataset=data[:8],
        callbacks=[callback, recorder],
    )
    trainer.train()
    return recorder, trainer


if __name__ == "__main__":
    report_dir = Path(sys.argv[1])
    recorder, trainer = train("torchrun", report_dir / "out", rank_zero_only=False)
    path = report_dir / f"torchrun-{trainer.args.process_index}.json"
    path.write_text(json.dumps(recorder.calls))
