"""One run trained the way every stage trains it: on the run's corpus and hardware, logged live
to a W&B run of its own, with a progress line per evaluation (the main process only, under data
parallelism)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from sweep.config import data_config, execution, public
from sweep.core import distributed as D
from sweep.core.checkpoint import set_aside_if_damaged
from sweep.core.data import load_corpus
from sweep.core.hardware import SINGLE, World
from sweep.core.train import RunConfig, RunResult, train
from sweep.edges.tracking import live_progress, log_result, wandb_run

NO_WANDB = {"kind": "none"}
LOG = logging.getLogger("musweep")


def train_logged(
    cfg: DictConfig,
    run_dir: Path,
    run: RunConfig,
    *,
    name: str,
    job_type: str | None = None,
    wandb_config: dict[str, Any] | None = None,
    world: World = SINGLE,
    on_wandb: Callable[[Any], None] | None = None,
    **train_options: Any,
) -> tuple[RunResult, torch.nn.Module]:
    """`train(run, ...)` with the config's corpus and execution. With a `job_type` the run is a
    W&B run of that type (its config `wandb_config`, handed to `on_wandb` once open); without,
    it prints its progress only (a warm start's source and stages). `train_options` are
    `train`'s own (checkpoint, warm start, callbacks). A run's own checkpoint that is damaged
    (truncated, failing its checksum) is moved aside, named in a warning, and the run trained
    again from its start: a damaged file the tool can recompute is mended, not a failure."""
    own = train_options.get("checkpoint_path")
    if own is not None and world.main and (damaged := set_aside_if_damaged(own)):
        LOG.warning("%s: moved to %s.damaged; the run starts again from step 0", damaged, own)
    D.barrier(world)  # every process sees the same checkpoint, or none
    logger = cfg.logger if job_type is not None and world.main else NO_WANDB
    config = wandb_config or {}
    with wandb_run(logger, run_dir, job_type or "", name, config, public(cfg)) as wb:
        if on_wandb is not None:
            on_wandb(wb)
        result, model = train(
            run,
            load_corpus(data_config(cfg)),
            execution=execution(cfg),
            world=world,
            on_progress=live_progress(wb, name, run.steps, echo=world.main),
            **train_options,
        )
        log_result(wb, result)
    return result, model
