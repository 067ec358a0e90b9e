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
from omegaconf import DictConfig

from sweep.config import job_config, plain, run_config, target_depth
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
from sweep.core.sections import Sections, VerifySection
from sweep.core.train import RunResult
from sweep.core.verdict import Status, Verdict
from sweep.edges.distributed import process_group
from sweep.stages.plan import StagePlan, StepSeconds, estimated_seconds
from sweep.stages.stage import Context, GridStage, Section, hparams_tag, target_run_flops
from sweep.stages.target import train_target


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
    cfg = job_config(spec["cfg"])
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


def verify_flops(records: Mapping[int, Mapping[str, Any]]) -> int:
    """What the check's own runs cost: all but the one at the tuned LR (the cold target run)."""
    return sum(record["result"]["flops"] for k, record in records.items() if k != 0)


def verify_summary(
    records: Mapping[int, Mapping[str, Any]],
    tuned_lr: float,
    relative_band: float,
    target_flops: float,
    tolerance: float,
    differs: str = "",
    predicted_lr: float | None = None,
) -> VerifySection:
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
    interval = list(optimum_interval(xs, ys, band))
    if closed:
        status, bound = regret_status(regret, tolerance, relative_band)
        lo, hi = interval
        text = (
            f"at the target: the tuned LR loses {percent(regret)} ({bound}), optimum log2 LR "
            f"{optimum.log2_lr:.2f} (within noise {lo:.2f} to {hi:.2f}; tuned {tuned_log2:.2f})"
        )
        if status is Status.fails and differs:
            text += f"; besides its width, {differs}"
        verdict = Verdict(status, text)
    else:
        verdict = Verdict(
            Status.inconclusive,
            f"at the target: inconclusive, the optimum is not bracketed by {len(ks)} LRs "
            f"(verify.max_runs reached); regret at the tuned LR ≥ {percent(regret)}",
        )
    prediction: dict[str, float] = {}
    if predicted_lr is not None and predicted_lr != tuned_lr:
        prediction, sentence = judge_prediction(xs, ys, tuned_log2, predicted_lr, relative_band)
        verdict = Verdict(verdict.status, f"{verdict.text}; {sentence}")
    flops = verify_flops(records)
    return VerifySection(
        curve=[[x, y] for x, y in zip(xs, ys, strict=True)],
        tuned_log2_lr=tuned_log2,
        optimum_log2_lr=optimum.log2_lr,
        optimum_interval=interval,
        bracketed=closed,
        regret=regret,
        runs=len([k for k in ks if k != 0]),
        flops_vs_target=flops / target_flops if target_flops else math.nan,
        **prediction,
        verdict=verdict.to_dict(),
    )


def judge_prediction(
    xs: list[float], ys: list[float], tuned_log2: float, predicted_lr: float, band: float
) -> tuple[dict[str, float], str]:
    """The regret of the LR the axes stage predicted, beside the tuned LR's, both read off the
    fitted curve (the prediction falls between grid points), and the sentence comparing them."""
    predicted = fitted_regret(xs, ys, math.log2(predicted_lr))
    carried = fitted_regret(xs, ys, tuned_log2)
    if abs(predicted - carried) <= band:
        which = f"within the noise (±{percent(band)}) of the tuned LR's"
    else:
        which = "better than" if predicted < carried else "worse than"
        which += f" the tuned LR's {percent(carried)}"
    figures = {
        "predicted_log2_lr": math.log2(predicted_lr),
        "predicted_regret": predicted,
        "carried_regret_fitted": carried,
    }
    sentence = (
        f"the LR predicted along the other axes (log2 {math.log2(predicted_lr):.2f}) loses "
        f"{percent(predicted)}, {which}"
    )
    return figures, sentence


def regret_status(regret: float, tolerance: float, noise: float) -> tuple[Status, str]:
    """A regret judged against the tolerance and the noise band, and the bound it met in words."""
    if regret <= tolerance:
        return Status.passes, f"within the tolerance {percent(tolerance)}"
    if regret <= noise:
        return (
            Status.within_noise,
            f"above the tolerance {percent(tolerance)} but within the noise ±{percent(noise)}",
        )
    beyond = f"beyond the tolerance {percent(tolerance)} and the noise ±{percent(noise)}"
    return Status.fails, beyond


def differs(cfg: DictConfig) -> str:
    """How the target differs from the ladder's transfer check besides its width."""
    ladder, parts = cfg.ladder, []
    if ladder.target_steps != ladder.transfer_steps:
        parts.append(f"{ladder.target_steps} steps against the ladder's {ladder.transfer_steps}")
    if ladder.target_n_layer and ladder.target_n_layer != ladder.n_layer:
        parts.append(f"{ladder.target_n_layer} layers against {ladder.n_layer}")
    return "the target trains " + " and ".join(parts) if parts else ""


class VerifyStage(GridStage):
    """The cold target at the tuned LR's neighbours, in rounds until the optimum is bracketed
    or `verify.max_runs` is spent."""

    name = "verify"
    parallel = True

    def skipped(self, ctx: Context) -> str | None:
        return "verify.max_runs < 2 cannot bracket" if ctx.cfg.verify.max_runs < 2 else None

    def max_rounds(self, ctx: Context) -> int:
        return ctx.cfg.verify.max_runs + 1

    def read(self, ctx: Context) -> dict[int, dict[str, Any]]:
        return read_curve(ctx.run_dir, ctx.require_tuned())

    def todo(self, ctx: Context, done: Mapping[int, Mapping[str, Any]]) -> list[int]:
        curve = {k: final_loss(record) for k, record in done.items()}
        return next_steps(curve, ctx.cfg.verify.max_runs)

    def specs(self, ctx: Context, todo: list[int]) -> list[dict]:
        return verify_specs(ctx.cfg, ctx.run_dir, ctx.require_tuned(), todo)

    def job(self, spec: dict[str, Any]) -> str:
        return verify_job(spec)

    def progress(self, ctx: Context, done: Mapping) -> str:
        return f"{len(done)} target runs"

    def plan(self, ctx: Context, step_seconds: StepSeconds) -> StagePlan:
        if reason := self.skipped(ctx):
            return StagePlan(self.name, 0, 0, 0.0, 0, 0.0, 0.0, f"skipped: {reason}")
        cfg, tuned, max_runs = ctx.cfg, ctx.tuned_or_default(), ctx.cfg.verify.max_runs
        curve = {k: 0.0 for k in read_curve(ctx.run_dir, tuned)}
        first = [k for k in next_steps(curve | {0: 0.0}, max_runs) if k != 0]
        done = len([k for k in curve if k != 0])
        run = run_config(
            cfg, cfg.ladder.target, "mup", tuned, cfg.ladder.target_steps, cfg.seed,
            target_depth(cfg),
        )  # fmt: skip
        most = max(0, max_runs - done)
        return StagePlan(
            self.name,
            len(first),
            len(first),
            len(first) * run.flops,
            most,
            most * run.flops,
            estimated_seconds([run] * len(first), step_seconds, len(first)),
            f"the target at the tuned LR × 2^±{cfg.ladder.lr_resolution:g}",
        )

    def summary(self, ctx: Context, so_far: Sections) -> Section | None:
        if ctx.tuned is None or not self.complete(ctx, records := self.read(ctx)):
            return None
        band = so_far.get("transfer", {}).get("noise", {}).get("relative_band", 0.0)
        section = verify_summary(
            records,
            ctx.tuned["lr"],
            band,
            target_run_flops(ctx.cfg),
            ctx.cfg.ladder.regret_tolerance,
            differs(ctx.cfg),
            predicted_lr=so_far.get("axes", {}).get("prediction", {}).get("lr"),
        )
        return Section(self.name, section, verify_flops(records), "verify_flops")
