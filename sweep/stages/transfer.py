"""The transfer stage: does the proxy's optimum stay put as the model widens? (docs/methods.md §3)

A point is (parametrization, width, log2 LR); it trains every seed there with the other
hyperparameters at their tuned values. Points are dealt to Submitit jobs (one point per job on
SLURM; a few long-lived jobs locally, where each process pays seconds of imports), and each point's
result file is written the moment it is done, so an interrupted stage reruns only what it lacks.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from sweep.config import data_config, plain, run_config
from sweep.core.atomic import write_atomic
from sweep.core.data import load_corpus
from sweep.core.metrics import drift, fit_optimum, transfer_verdict, wider_is_better
from sweep.core.parametrization import PARAMETRIZATIONS
from sweep.core.train import train
from sweep.edges.tracking import log_result, wandb_run


def point_key(parametrization: str, width: int, log2_lr: float) -> str:
    return f"{parametrization}_w{width}_lr{log2_lr:+.2f}"


def points(cfg: DictConfig, hparams: dict[str, float]) -> list[dict]:
    """Every point of the check: parametrization × width × log2 LR, with the tuned HPs."""
    return [
        {
            "hparams": hparams,
            "parametrization": p,
            "width": width,
            "log2_lr": float(log2_lr),
            "key": point_key(p, width, log2_lr),
        }
        for p in PARAMETRIZATIONS
        for width in cfg.ladder.widths
        for log2_lr in cfg.ladder.lr_grid
    ]


def job_specs(cfg: DictConfig, run_dir: Path, todo: list[dict], n_jobs: int) -> list[dict]:
    """Deal the points to `n_jobs` jobs round-robin, so each gets a mix of cheap and dear ones."""
    container = plain(cfg)
    n_jobs = max(1, min(n_jobs, len(todo)))
    return (
        [
            {"cfg": container, "run_dir": str(run_dir), "points": todo[i::n_jobs]}
            for i in range(n_jobs)
        ]
        if todo
        else []
    )


def transfer_job(spec: dict[str, Any]) -> list[str]:
    """Submitit job: train its points, writing each point's result file as soon as it is done.

    A killed job loses only the point it was training; the rerun skips the files that exist.
    """
    cfg = OmegaConf.create(spec["cfg"])
    run_dir = Path(spec["run_dir"])
    torch.set_num_threads(cfg.launcher.cpus_per_task)
    done = []
    for point in spec["points"]:
        path = run_dir / "transfer" / f"{point['key']}.json"
        if not path.exists():
            write_atomic(path, json.dumps(train_point(cfg, run_dir, point)).encode())
        done.append(point["key"])
    return done


def train_point(cfg: DictConfig, run_dir: Path, point: dict[str, Any]) -> dict[str, Any]:
    """Final validation loss of every seed at one point; NaN where a seed diverged."""
    corpus = load_corpus(data_config(cfg))
    hparams = point["hparams"] | {"lr": 2.0 ** point["log2_lr"]}
    losses, flops = [], 0
    for seed in range(cfg.seed, cfg.seed + cfg.ladder.transfer_seeds):
        run = run_config(
            cfg, point["width"], point["parametrization"], hparams, cfg.ladder.transfer_steps, seed
        )
        config = {
            "width": point["width"],
            "parametrization": point["parametrization"],
            "log2_lr": point["log2_lr"],
            "seed": seed,
            **hparams,
        }
        with wandb_run(
            cfg.logger, run_dir, run_dir.name, "transfer", f"{point['key']}_s{seed}", config
        ) as wb:
            result, _ = train(run, corpus)
            log_result(wb, result)
        losses.append(result.final_val_loss if result.status == "completed" else math.nan)
        flops += result.flops
    return {"key": point["key"], "losses": losses, "flops": flops}


def point_loss(point: dict[str, Any]) -> float:
    """Mean over seeds; a point where any seed diverged counts as diverged (NaN)."""
    losses = np.asarray(point["losses"], dtype=float)
    return float(losses.mean()) if np.all(np.isfinite(losses)) else math.nan


def transfer_summary(cfg: DictConfig, points: dict[str, dict], tuned_lr: float) -> dict[str, Any]:
    """Curves, fitted optima and drift per parametrization, from the points on disk."""
    grid = [float(x) for x in cfg.ladder.lr_grid]
    summary: dict[str, Any] = {"log2_lrs": grid, "tuned_log2_lr": math.log2(tuned_lr)}
    for p in PARAMETRIZATIONS:
        curves, optima = {}, {}
        for width in cfg.ladder.widths:
            curve = [point_loss(points[point_key(p, width, x)]) for x in grid]
            curves[width] = curve
            if any(math.isfinite(v) for v in curve):
                optima[width] = fit_optimum(grid, curve).log2_lr
        summary[p] = {
            "curves": {str(w): c for w, c in curves.items()},
            "optimum_log2_lr": {str(w): o for w, o in optima.items()},
            "drift_log2": drift(optima) if len(optima) > 1 else math.nan,
            "wider_is_better": wider_is_better(curves),
        }
    summary["verdict"] = transfer_verdict(summary["mup"]["drift_log2"], summary["sp"]["drift_log2"])
    summary["flops"] = sum(point["flops"] for point in points.values())
    return summary
