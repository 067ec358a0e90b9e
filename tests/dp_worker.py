"""One process of a data-parallel training run, for the data-parallel tests.

    python dp_worker.py SPEC.json      (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set)

Trains the spec's run on its share of every batch in a gloo group and, on rank 0, writes the
result with the optimizer's µP groups and the parameters' shapes as the processes saw them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from sweep.core import distributed as D
from sweep.core.custom import CustomConfig
from sweep.core.data import DataConfig, load_corpus
from sweep.core.hardware import Execution, World
from sweep.core.model import GPTConfig
from sweep.core.models import build_model
from sweep.core.train import OptimConfig, RunConfig, make_optimizer, train

GROUP_KEYS = ("names", "role", "lr_mult", "lr", "weight_decay", "eps")


def run_config(spec: dict) -> RunConfig:
    if spec.get("factory"):  # a custom model: base shapes from mup, frozen into the model
        model = CustomConfig(
            factory=spec["factory"], d_model=spec["width"], base_d_model=16, seq_len=32,
            options=(("head_dim", 8),), readout=spec.get("readout"),
        )  # fmt: skip
    else:
        model = GPTConfig(
            d_model=spec["width"], base_d_model=16, d_head=8, seq_len=32, n_layer=2, vocab_size=256
        )
    return RunConfig(
        model=model,
        optim=OptimConfig(lr=spec.get("lr", 1e-2), warmup_steps=2, weight_decay=0.1),
        steps=spec["steps"],
        batch_size=8,
        eval_every=spec.get("eval_every", 4),
        eval_batches=2,
        seed=3,
    )


def groups_and_shapes(run: RunConfig, world: World) -> tuple[list[dict], dict[str, list[int]]]:
    """The optimizer's groups and the parameter shapes of the model wrapped for `world`."""
    torch.manual_seed(run.seed)
    module = D.wrap(build_model(run.model), world, torch.device("cpu"))
    optimizer = make_optimizer(D.unwrapped(module), run.optim)
    groups = [{key: group[key] for key in GROUP_KEYS} for group in optimizer.param_groups]
    shapes = {name: list(p.shape) for name, p in D.unwrapped(module).named_parameters()}
    return groups, shapes


def main(path: str) -> None:
    spec = json.loads(Path(path).read_text())
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    world = World(rank, size, rank, spec.get("strategy", "ddp"))
    torch.set_num_threads(1)
    if size > 1:
        dist.init_process_group("gloo")
    corpus = load_corpus(DataConfig(source="text", path=spec["corpus"], cache_dir=spec["cache"]))
    run = run_config(spec)
    groups, shapes = groups_and_shapes(run, world)
    result, _ = train(
        run,
        corpus,
        execution=Execution(
            micro_batch_size=spec.get("micro"), sync_every=spec.get("sync_every", 1)
        ),
        world=world,
        checkpoint_path=spec.get("checkpoint"),
        checkpoint_every=spec.get("checkpoint_every", 0),
    )
    if world.main:
        record = {"result": result.to_dict(), "groups": groups, "shapes": shapes}
        Path(spec["out"]).write_text(json.dumps(record))
    if size > 1:
        dist.barrier()  # no process tears the group down while another still uses it
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
