"""The verify stage: is the tuned LR right at the target itself? (docs/methods.md §3)

The cold target (its width and depth, steps and seed) trained at the tuned LR × 2^(k·res) for
k = ±1, then one step further past a side where the best run sits at the edge, as long as
`verify.max_runs` allows; k = 0 is the target stage's cold run. The optimum is fitted as in the
transfer check, and the regret at the tuned LR is the figure a user can trust for the target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from sweep.config import plain
from sweep.core.lr_curve import (
    bracket,
    fit_optimum,
    fitted_regret,
    optimum_interval,
    relative_regret,
    steps_past_open_sides,
)
from sweep.core.metrics import percent
from sweep.core.records import read_record, write_record
from sweep.core.train import RunResult
from sweep.edges.distributed import process_group
from sweep.stages.target import train_target
from sweep.stages.transfer import hparams_tag


def verify_key(step: int, tag: str) -> str:
    return f"k{step:+d}_{tag}"


def next_steps(curve: Mapping[int, float], max_runs: int) -> list[int]:
    """The LR steps still to train: 0 (the cold target) and ±1 first, then one past each open
    side of the bracket while the runs beside k = 0 number fewer than `max_runs`."""
    first = [k for k in (0, -1, 1) if k not in curve]
    if first:
        return first
    extra_runs = len(curve) - 1  # beside k = 0, the target stage's cold run
    return steps_past_open_sides(dict(curve))[: max(0, max_runs - extra_runs)]


def read_curve(run_dir: Path, tuned: Mapping[str, float]) -> dict[int, dict[str, Any]]:
    """{k: run record}: the verify runs made with these tuned values, and the target stage's
    cold run as k = 0 when it was made with them."""
    tag = hparams_tag(tuned)
    records = {}
    for path in sorted((run_dir / "verify").glob(f"k*_{tag}.json")):
        if (record := read_record(path)) is not None:  # damaged: moved aside, redone
            records[int(path.stem.split("_")[0][1:])] = record
    cold = run_dir / "target" / "cold.json"
    if 0 not in records and cold.exists():
        record = read_record(cold) or {}
        if math.isclose(record.get("log2_lr", math.nan), math.log2(tuned["lr"])):
            records[0] = record
    return records


def final_loss(record: Mapping[str, Any]) -> float:
    result = RunResult(**record["result"])
    return result.final_val_loss if result.status == "completed" else math.nan


def verify_specs(cfg: DictConfig, run_dir: Path, tuned: dict, steps: list[int]) -> list[dict]:
    container = plain(cfg)
    return [{"cfg": container, "run_dir": str(run_dir), "hparams": tuned, "step": k} for k in steps]


def verify_job(spec: dict[str, Any]) -> str:
    """Submitit job: one cold target run at the tuned LR × 2^(k·res); writes its record."""
    cfg = OmegaConf.create(spec["cfg"])
    run_dir, tuned, k = Path(spec["run_dir"]), spec["hparams"], spec["step"]
    torch.set_num_threads(cfg.launcher.cpus_per_task)
    key = verify_key(k, hparams_tag(tuned))
    checkpoint = run_dir / "verify" / f"{key}.ckpt"
    with process_group(cfg.hardware.device, cfg.hardware.data_parallel) as world:
        record = train_target(
            cfg,
            run_dir,
            tuned,
            warm=False,
            checkpoint=checkpoint,
            seed=cfg.seed,
            steps=cfg.ladder.target_steps,
            lr_scale=2.0 ** (k * cfg.ladder.lr_resolution),
            wandb_name=f"verify-k{k:+d}",
            job_type="verify",
            world=world,
        )
    if world.main:
        write_record(run_dir / "verify" / f"{key}.json", record)
        checkpoint.unlink()  # the record is what the check needs; the weights are a target's
    return key


def verify_summary(
    records: Mapping[int, Mapping[str, Any]],
    tuned_lr: float,
    relative_band: float,
    target_flops: float,
    tolerance: float,
    differs: str = "",
    predicted_lr: float | None = None,
) -> dict[str, Any]:
    """The target's loss against LR, its fitted optimum and interval, the regret at the tuned
    LR, what the extra runs cost next to one target run, and one line saying it. `differs`
    names how the target differs from the ladder besides its width (its training length, say),
    added to the line when the tuned LR misses: a width the ladder checked is not the cause.
    `predicted_lr`, the axes stage's LR for the target's tokens and batch, is judged on the
    same curve: its regret beside the tuned LR's says which of the two was right."""
    ks = sorted(records)
    xs = [records[k]["log2_lr"] for k in ks]
    ys = [final_loss(records[k]) for k in ks]
    tuned_log2 = math.log2(tuned_lr)
    finite = [y for y in ys if math.isfinite(y)]
    band = relative_band * min(finite) if finite else 0.0
    closed = bracket(xs, ys).closed
    optimum = fit_optimum(xs, ys)
    regret = relative_regret(xs, ys, tuned_log2)
    flops = sum(records[k]["result"]["flops"] for k in ks if k != 0)
    summary = {
        "curve": [[x, y] for x, y in zip(xs, ys, strict=True)],
        "tuned_log2_lr": tuned_log2,
        "optimum_log2_lr": optimum.log2_lr,
        "optimum_interval": list(optimum_interval(xs, ys, band)),
        "bracketed": closed,
        "regret": regret,
        "runs": len([k for k in ks if k != 0]),
        "flops": flops,
        "flops_vs_target": flops / target_flops if target_flops else math.nan,
    }
    lo, hi = summary["optimum_interval"]
    where = f"optimum log2 LR {optimum.log2_lr:.2f} (within noise {lo:.2f} to {hi:.2f}; tuned "
    where += f"{tuned_log2:.2f})"
    if not closed:
        summary["verdict"] = (
            f"at the target: inconclusive, the optimum is not bracketed by {len(ks)} LRs "
            f"(verify.max_runs reached); regret at the tuned LR ≥ {percent(regret)}"
        )
    else:
        within = regret <= max(tolerance, relative_band)
        summary["verdict"] = (
            f"at the target: the tuned LR loses {percent(regret)} "
            f"({'within' if within else 'beyond'} the tolerance), {where}"
        )
        if not within and differs:
            summary["verdict"] += f"; besides its width, {differs}"
    if predicted_lr is not None and predicted_lr != tuned_lr:
        # both read off the fitted curve: the prediction falls between grid points
        predicted = fitted_regret(xs, ys, math.log2(predicted_lr))
        carried = fitted_regret(xs, ys, tuned_log2)
        summary |= {
            "predicted_log2_lr": math.log2(predicted_lr),
            "predicted_regret": predicted,
            "carried_regret_fitted": carried,
        }
        if abs(predicted - carried) <= relative_band:
            which = f"within the noise (±{percent(relative_band)}) of the tuned LR's"
        else:
            which = "better than" if predicted < carried else "worse than"
            which += f" the tuned LR's {percent(carried)}"
        summary["verdict"] += (
            f"; the LR predicted along the other axes (log2 {math.log2(predicted_lr):.2f}) loses "
            f"{percent(predicted)}, {which}"
        )
    return summary
