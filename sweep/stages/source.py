"""The warm start's source model: which run it is and where its checkpoint lives.

The source is a model of a ladder width (`warmstart.source`) trained `ladder.transfer_steps` with
the tuned HPs at the ladder's seed: at the ladder's depth that is exactly one run of the transfer
check (µP, that width, the tuned LR), so the transfer stage writes the checkpoint the target stage
grows, and the source costs nothing the pipeline has not already spent. Checkpoints are named by
a digest of the whole run, so a study that tuned anew never grows a stale source.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sweep.config import run_config, source_width, target_depth
from sweep.core.train import RunConfig
from sweep.grow.choices import Method
from sweep.grow.warmstart import source_config


def source_run(cfg: DictConfig, hparams: dict[str, float], seed: int) -> RunConfig:
    """`ladder.transfer_steps` at the tuned HPs, at the source's shape."""
    ws = cfg.warmstart
    run = run_config(
        cfg, cfg.ladder.target, "mup", hparams, cfg.ladder.transfer_steps, seed, target_depth(cfg)
    )
    return replace(
        run, model=source_config(run.model, ws.method, source_width(cfg), ws.stack_factor)
    )


def digest(record: Any) -> str:
    """A short name for a run (or a chain of them): what its checkpoint is named by."""
    blob = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def source_checkpoint(run_dir: Path, run: RunConfig) -> Path:
    model = run.model
    name = f"source_w{model.d_model}_L{model.n_layer}_s{run.seed}_{digest(run.to_dict())}.ckpt"
    return run_dir / "target" / name


def shared_checkpoint(
    cfg: DictConfig, run_dir: Path, tuned: dict[str, float], run: RunConfig
) -> Path | None:
    """Where a transfer run saves its final state if it is the warm start's source, else None."""
    if cfg.warmstart.method == Method.cold or run.seed != cfg.seed:
        return None
    source = source_run(cfg, tuned, run.seed)
    return source_checkpoint(run_dir, source) if run == source else None
