"""The target stage: the target width trained with the proxy's tuned HPs, warm and cold.

The warm run starts from a source model grown by `warmstart.method` (`sweep.grow.warmstart`); the
cold run from a fresh µP init; both with the same HPs, seed and therefore the same batches. The
source is trained with the tuned HPs for `ladder.tune_steps` at the widest ladder width
(`warmstart.source=widest`, the default: µTransfer already makes it a tuned model, and growing 2×
keeps far more of it than growing the 1/16-wide proxy) or at the proxy width itself (`=proxy`:
the best trial's own run, same seed); `stack` trains it at 1/stack_factor of the depth. Every run
checkpoints as it goes, so an interrupted stage resumes.

`train_target` is the one path from a config to a finished target run; the warm-start benchmark
(`analysis.warmstart`) calls it too, with shorter schedules and shifted LRs.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from sweep.config import (
    data_config,
    execution,
    plain,
    public,
    run_config,
    source_width,
    target_depth,
)
from sweep.core.checkpoint import load_checkpoint
from sweep.core.data import load_corpus
from sweep.core.flops import training_flops
from sweep.core.hardware import SINGLE, World
from sweep.core.speedup import speedup
from sweep.core.train import RunConfig, RunResult, train
from sweep.edges.distributed import process_group
from sweep.edges.tracking import live_progress, log_result, wandb_run
from sweep.grow.warmstart import Method, pad_function_gap, source_config, warm_start

KINDS = ("warm", "cold")
# the settings each method reads, recorded beside its result
METHOD_SETTINGS = {
    Method.shrink_pad_perturb: ("shrink", "perturb"),
    Method.rc_sampling: ("sampling", "noise"),
    Method.stack: ("stack_factor",),
}


def cold_run_flops(cfg: DictConfig) -> int:
    """What one target run costs (the unit the other checks' costs are given in)."""
    run = run_config(
        cfg, cfg.ladder.target, "mup", dict(cfg.ladder.hparams), cfg.ladder.target_steps,
        cfg.seed, target_depth(cfg),
    )  # fmt: skip
    return training_flops(run.model, run.steps * run.tokens_per_step)


def target_specs(cfg: DictConfig, run_dir: Path, hparams: dict[str, float]) -> list[dict]:
    container = plain(cfg)
    kinds = KINDS if cfg.warmstart.method != Method.cold else ("cold",)
    return [
        {"cfg": container, "run_dir": str(run_dir), "hparams": hparams, "kind": k} for k in kinds
    ]


def source_run(cfg: DictConfig, hparams: dict[str, float], seed: int) -> RunConfig:
    """The warm start's source: `ladder.tune_steps` at the tuned HPs, at the source's shape."""
    ws = cfg.warmstart
    run = run_config(
        cfg, cfg.ladder.target, "mup", hparams, cfg.ladder.tune_steps, seed, target_depth(cfg)
    )
    return replace(
        run, model=source_config(run.model, ws.method, source_width(cfg), ws.stack_factor)
    )


def source_checkpoint(run_dir: Path, run: RunConfig) -> Path:
    model = run.model
    base = "" if model.depth_base == model.n_layer else f"_base{model.depth_base}"
    return run_dir / "target" / f"source_w{model.d_model}_L{model.n_layer}{base}_s{run.seed}.ckpt"


def train_source(
    cfg: DictConfig, run_dir: Path, hparams: dict[str, float], seed: int, world: World = SINGLE
) -> tuple[RunConfig, RunResult, dict[str, torch.Tensor]]:
    """The warm start's source at the tuned HPs (trained once, then read from its checkpoint):
    its run, its result and its weights (read back from the checkpoint, so that every process
    of a data-parallel run holds them whole, whatever the sharding)."""
    run = source_run(cfg, hparams, seed)
    checkpoint = source_checkpoint(run_dir, run)
    result, _ = train(
        run,
        load_corpus(data_config(cfg)),
        execution=execution(cfg),
        world=world,
        on_progress=live_progress(None, f"source {run.model.d_model}", run.steps, echo=world.main),
        checkpoint_path=checkpoint,
    )
    return run, result, load_checkpoint(checkpoint)["model"]


def warm_init(
    cfg: DictConfig,
    run_dir: Path,
    hparams: dict[str, float],
    target: RunConfig,
    world: World = SINGLE,
) -> tuple[dict[str, torch.Tensor], RunResult, dict[str, Any]]:
    """The warm run's initial state, its source's result, and what to record about the method."""
    ws = cfg.warmstart
    source_run, source_result, source = train_source(cfg, run_dir, hparams, target.seed, world)
    state = warm_start(
        ws.method,
        source,
        source_run.model,
        target.model,
        shrink=ws.shrink,
        perturb=ws.perturb,
        sampling=ws.sampling,
        noise=ws.noise,
        seed=target.seed,
    )
    info = {
        "method": str(ws.method),
        "source_width": source_run.model.d_model,
        "source_layers": source_run.model.n_layer,
        **{name: ws[name] for name in METHOD_SETTINGS.get(ws.method, ())},
    }
    if ws.method == Method.shrink_pad_perturb:  # how exactly its padding kept the function
        info["pad_function_gap"] = pad_function_gap(source, source_run.model, target.model)
    return state, source_result, info


def train_target(
    cfg: DictConfig,
    run_dir: Path,
    tuned: dict[str, float],
    *,
    warm: bool,
    checkpoint: Path,
    seed: int,
    steps: int,
    lr_scale: float = 1.0,
    wandb_name: str | None = None,
    job_type: str | None = None,
    world: World = SINGLE,
) -> dict[str, Any]:
    """One target run: config → warm start (from a source trained with the tuned HPs) or a
    cold init → checkpointed training → its result record.

    `lr_scale` multiplies the tuned LR of the target run only (the source keeps the tuned HPs).
    The record holds the run's history, the method's settings and the source's cost. Under a
    data-parallel `world` every process calls this alike; only the main one logs to W&B.
    """
    kind = "warm" if warm else "cold"
    hparams = tuned | {"lr": tuned["lr"] * lr_scale}
    run = run_config(cfg, cfg.ladder.target, "mup", hparams, steps, seed, target_depth(cfg))
    init_state, source_flops, info = None, 0, {"method": str(Method.cold)}
    if warm:
        init_state, source_result, info = warm_init(cfg, run_dir, tuned, run, world)
        source_flops = source_result.flops
    config = {"width": cfg.ladder.target, "parametrization": "mup", "warmstart": kind, **hparams}
    name = wandb_name or f"target-{kind}"
    job_type = job_type or f"target-{kind}"
    logger = cfg.logger if world.main else {"kind": "none"}
    with wandb_run(logger, run_dir, job_type, name, config | info, public(cfg)) as wb:
        result, _ = train(
            run,
            load_corpus(data_config(cfg)),
            execution=execution(cfg),
            world=world,
            init_state=init_state,
            on_progress=live_progress(wb, name, run.steps, echo=world.main),
            checkpoint_path=checkpoint,
            checkpoint_every=cfg.ladder.eval_every,
        )
        log_result(wb, result)
    return {
        "kind": kind,
        "seed": seed,
        "steps": steps,
        "log2_lr": math.log2(hparams["lr"]),
        "warmstart": info,
        "result": result.to_dict(),
        "source_flops": source_flops,
        "flops_per_step": result.flops / max(1, result.steps_done),
    }


def target_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Submitit job: the stage's warm or cold run; returns its record."""
    cfg = OmegaConf.create(spec["cfg"])
    run_dir, kind = Path(spec["run_dir"]), spec["kind"]
    torch.set_num_threads(cfg.launcher.cpus_per_task)
    with process_group(cfg.hardware.device, cfg.hardware.data_parallel) as world:
        return train_target(
            cfg,
            run_dir,
            spec["hparams"],
            warm=kind == "warm",
            checkpoint=run_dir / "target" / f"{kind}.ckpt",
            seed=cfg.seed,
            steps=cfg.ladder.target_steps,
            world=world,
        )


def target_summary(
    cfg: DictConfig, runs: dict[str, dict], tuning_flops: float = 0.0
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "width": cfg.ladder.target,
        "n_layer": target_depth(cfg),
        "method": str(cfg.warmstart.method),
        "source_width": source_width(cfg),
    }
    for kind, run in runs.items():
        result = RunResult(**run["result"])
        summary[kind] = {
            "final_val_loss": result.final_val_loss,
            "status": result.status,
            "val_curve": [list(p) for p in result.val_loss],
            "flops": result.flops,
            "tokens_per_s": result.tokens_per_s,
            "mfu": result.mfu,
            "devices": result.devices,
        }
    summary["flops"] = sum(run["result"]["flops"] + run["source_flops"] for run in runs.values())
    gap = runs.get("warm", {}).get("warmstart", {}).get("pad_function_gap")
    if gap is not None:  # how exactly shrink-pad-perturb's padding kept the source's function
        summary["pad_function_gap"] = gap
    if "warm" in runs and "cold" in runs:
        warm, cold = runs["warm"], runs["cold"]
        per_step = cold["flops_per_step"]
        summary |= speedup(
            summary["warm"]["val_curve"],
            summary["cold"]["val_curve"],
            source_steps_equiv=warm["source_flops"] / per_step,
            tuning_steps_equiv=tuning_flops / per_step,
        )
    return summary
