"""The target stage: the target width trained with the proxy's tuned HPs, warm and cold.

The warm run starts from the tuned proxy grown by shrink-pad-perturb (METHODS §4); the cold run
from a fresh µP init; both with the same HPs, seed and therefore the same batches. The proxy is
retrained with the best trial's HPs (same seed: the best trial's own run) and checkpointed, and
every run checkpoints as it goes, so an interrupted stage resumes.
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


def train_proxy(cfg: DictConfig, run_dir: Path, hparams: dict[str, float]):
    """The tuned proxy's weights (trained once, then read from its checkpoint)."""
    ladder = cfg.ladder
    run = run_config(cfg, ladder.widths[0], "mup", hparams, ladder.tune_steps, cfg.seed)
    result, model = train(
        run, load_corpus(data_config(cfg)), checkpoint_path=run_dir / "target" / "proxy.ckpt"
    )
    return run, result, model


def target_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Submitit job: one target run, warm or cold; returns its history."""
    cfg = OmegaConf.create(spec["cfg"])
    run_dir, hparams, kind = Path(spec["run_dir"]), spec["hparams"], spec["kind"]
    torch.set_num_threads(cfg.launcher.cpus_per_task)
    ladder = cfg.ladder
    run = run_config(cfg, ladder.target, "mup", hparams, ladder.target_steps, cfg.seed)
    init_state, proxy_flops = None, 0
    if kind == "warm":
        proxy_run, proxy_result, proxy = train_proxy(cfg, run_dir, hparams)
        init_state = shrink_pad_perturb(
            proxy.state_dict(),
            proxy_run.model,
            run.model,
            shrink=cfg.warmstart.shrink,
            perturb=cfg.warmstart.perturb,
            seed=cfg.seed,
        )
        proxy_flops = proxy_result.flops
    config = {
        "width": ladder.target,
        "parametrization": "mup",
        "warmstart": kind,
        **(
            {"shrink": cfg.warmstart.shrink, "perturb": cfg.warmstart.perturb}
            if kind == "warm"
            else {}
        ),
        **hparams,
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
        "proxy_flops": proxy_flops,
        "flops_per_step": result.flops / max(1, result.steps_done),
    }


def target_summary(cfg: DictConfig, runs: dict[str, dict]) -> dict[str, Any]:
    summary: dict[str, Any] = {"width": cfg.ladder.target, "method": cfg.warmstart.method}
    for kind, run in runs.items():
        result = RunResult(**run["result"])
        summary[kind] = {
            "final_val_loss": result.final_val_loss,
            "status": result.status,
            "val_curve": [list(p) for p in result.val_loss],
            "flops": result.flops,
        }
    summary["flops"] = sum(run["result"]["flops"] + run["proxy_flops"] for run in runs.values())
    if "warm" in runs and "cold" in runs:
        warm, cold = runs["warm"], runs["cold"]
        proxy_steps = warm["proxy_flops"] / cold["flops_per_step"]
        summary |= speedup(
            summary["warm"]["val_curve"],
            summary["cold"]["val_curve"],
            proxy_steps_equiv=proxy_steps,
        )
    return summary
