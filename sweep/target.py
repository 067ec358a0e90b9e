"""The target stage: the target width trained with the proxy's tuned HPs, warm and cold.

The warm run starts from a source model grown by shrink-pad-perturb (METHODS §4); the cold run
from a fresh µP init; both with the same HPs, seed and therefore the same batches. The source is
trained with the tuned HPs for `ladder.tune_steps` at the widest ladder width (`warmstart.source
=widest`, the default: µTransfer already makes it a tuned model, and growing 2× keeps far more of
it than growing the 1/16-wide proxy) or at the proxy width itself (`=proxy`: the best trial's own
run, same seed). Every run checkpoints as it goes, so an interrupted stage resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from sweep.config import data_config, run_config
from sweep.data import load_corpus
from sweep.growth import shrink_pad_perturb
from sweep.metrics import speedup
from sweep.tracking import log_result, wandb_run
from sweep.train import RunResult, train

KINDS = ("warm", "cold")


def target_specs(cfg: DictConfig, run_dir: Path, hparams: dict[str, float]) -> list[dict]:
    container = OmegaConf.to_container(cfg, resolve=True)
    kinds = KINDS if cfg.warmstart.method != "cold" else ("cold",)
    return [
        {"cfg": container, "run_dir": str(run_dir), "hparams": hparams, "kind": k} for k in kinds
    ]


def source_width(cfg: DictConfig) -> int:
    return cfg.ladder.widths[-1 if cfg.warmstart.source == "widest" else 0]


def train_source(cfg: DictConfig, run_dir: Path, hparams: dict[str, float]):
    """The warm start's source at the tuned HPs (trained once, then read from its checkpoint)."""
    width = source_width(cfg)
    run = run_config(cfg, width, "mup", hparams, cfg.ladder.tune_steps, cfg.seed)
    checkpoint = run_dir / "target" / f"source_w{width}.ckpt"
    result, model = train(run, load_corpus(data_config(cfg)), checkpoint_path=checkpoint)
    return run, result, model


def target_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Submitit job: one target run, warm or cold; returns its history."""
    cfg = OmegaConf.create(spec["cfg"])
    run_dir, hparams, kind = Path(spec["run_dir"]), spec["hparams"], spec["kind"]
    torch.set_num_threads(cfg.launcher.cpus_per_task)
    ladder, warmstart = cfg.ladder, cfg.warmstart
    run = run_config(cfg, ladder.target, "mup", hparams, ladder.target_steps, cfg.seed)
    config = {"width": ladder.target, "parametrization": "mup", "warmstart": kind, **hparams}
    init_state, source_flops = None, 0
    if kind == "warm":
        source_run, source_result, source = train_source(cfg, run_dir, hparams)
        init_state = shrink_pad_perturb(
            source.state_dict(),
            source_run.model,
            run.model,
            shrink=warmstart.shrink,
            perturb=warmstart.perturb,
            seed=cfg.seed,
        )
        source_flops = source_result.flops
        config |= {
            "shrink": warmstart.shrink,
            "perturb": warmstart.perturb,
            "source_width": source_run.model.d_model,
        }
    with wandb_run(
        cfg.logger, run_dir, run_dir.name, f"target-{kind}", f"target-{kind}", config
    ) as wb:
        result, _ = train(
            run,
            load_corpus(data_config(cfg)),
            init_state=init_state,
            checkpoint_path=run_dir / "target" / f"{kind}.ckpt",
            checkpoint_every=ladder.eval_every,
        )
        log_result(wb, result)
    return {
        "kind": kind,
        "result": result.to_dict(),
        "source_flops": source_flops,
        "flops_per_step": result.flops / max(1, result.steps_done),
    }


def target_summary(cfg: DictConfig, runs: dict[str, dict]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "width": cfg.ladder.target,
        "method": cfg.warmstart.method,
        "source_width": source_width(cfg),
    }
    for kind, run in runs.items():
        result = RunResult(**run["result"])
        summary[kind] = {
            "final_val_loss": result.final_val_loss,
            "status": result.status,
            "val_curve": [list(p) for p in result.val_loss],
            "flops": result.flops,
        }
    summary["flops"] = sum(run["result"]["flops"] + run["source_flops"] for run in runs.values())
    if "warm" in runs and "cold" in runs:
        warm, cold = runs["warm"], runs["cold"]
        source_steps = warm["source_flops"] / cold["flops_per_step"]
        summary |= speedup(
            summary["warm"]["val_curve"],
            summary["cold"]["val_curve"],
            proxy_steps_equiv=source_steps,
        )
    return summary
