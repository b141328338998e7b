"""Data-parallel training under torchrun, every rank logging to one Metrana run.

Run it with::

    torchrun --standalone --nproc-per-node 4 examples/ddp_train.py --steps 50

torchrun gives every rank the same ``TORCHELASTIC_RUN_ID``, so all ranks on this host join one
Metrana session and share one dispatcher; the first rank to call ``metrana.init()`` starts it.

What is logged (``--run-name``, default ``ddp-demo``, in workspace ``examples``, project ``ddp``):

- every rank: ``loss`` and ``grad_norm`` at each step, labelled ``{"rank": RANK}`` so the ranks'
  series never collide;
- rank 0 only: ``global_loss`` (the loss all-reduced over the ranks), ``learning_rate`` and
  ``samples_per_s``, one unlabelled series each.

The model is a tiny MLP fitting a noisy linear target on the CPU with the gloo backend.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import metrana


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=32, help="samples per rank per step")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--workspace", default="examples")
    parser.add_argument("--project", default="ddp")
    parser.add_argument("--run-name", default="ddp-demo")
    parser.add_argument(
        "--report-dir", default=None, help="each rank writes rank-N.json there (for tests)"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    # torchrun sets these for every rank.
    rank = int(os.environ["RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    torch.set_num_threads(1)  # several ranks share a few cores: no oversubscription
    dist.init_process_group("gloo")

    metrana.init(
        workspace_name=args.workspace,
        project_name=args.project,
        run_name=args.run_name,
        # Wait at close() until every point of this rank is stored.
        close_strategy="CompleteAll",
    )
    labels = {"rank": str(rank)}

    torch.manual_seed(0)  # the same initial weights on every rank (DDP also broadcasts them)
    model = DistributedDataParallel(nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1)))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps)
    true_weights = torch.arange(8, dtype=torch.float32) / 8
    data = torch.Generator().manual_seed(1000 + rank)  # each rank sees its own shard

    for step in range(args.steps):
        started = time.perf_counter()
        x = torch.randn(args.batch_size, 8, generator=data)
        y = (x @ true_weights).unsqueeze(1) + 0.1 * torch.randn(args.batch_size, 1, generator=data)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()  # DDP all-reduces the gradients here
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
        optimizer.step()

        global_loss = loss.detach().clone()
        dist.all_reduce(global_loss, op=dist.ReduceOp.SUM)
        global_loss /= world_size

        metrana.log("loss", loss.item(), step=step, labels=labels)
        metrana.log("grad_norm", float(grad_norm), step=step, labels=labels)
        if rank == 0:
            elapsed = time.perf_counter() - started
            metrana.log("global_loss", global_loss.item(), step=step)
            metrana.log("learning_rate", scheduler.get_last_lr()[0], step=step)
            metrana.log("samples_per_s", args.batch_size * world_size / elapsed, step=step)
        scheduler.step()

    stats = metrana.stats()
    # Which session and dispatcher this rank used: all ranks share one of each.
    report = {
        "rank": rank,
        "pid": os.getpid(),
        "session": stats.session.session_dir,
        "dispatcher": stats.session.dispatcher.pid if stats.session.dispatcher else None,
        "logged": stats.process.logged if stats.process else None,
        "final_global_loss": global_loss.item(),
    }
    print(f"metrana-rank {json.dumps(report)}", flush=True)
    if args.report_dir:
        # The ranks share one stdout, where their lines may interleave: a file each is exact.
        Path(args.report_dir, f"rank-{rank}.json").write_text(json.dumps(report))
    metrana.close()
    dist.barrier()  # every rank's points are stored before any rank leaves
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
