"""The target stage: the target width trained at the values applied to it, warm and cold.

The values are the proxy's tuned ones moved by what the axes stage fitted (`sweep.stages.applied`;
`axes.apply=false`: carried over unchanged). The warm run starts from a source model grown by
`warmstart.method` (`sweep.grow.warmstart`); the cold run from a fresh µP init; both with the
same HPs, seed and therefore the same batches. The source (`sweep.stages.source`) is a ladder
width: the widest by default (µTransfer already makes it a tuned model, and growing 2× keeps far
more of it than growing the 1/16-wide proxy), and then it is the transfer check's own run at the
tuned values, reused; otherwise (`stack` trains it at 1/stack_factor of the depth, another seed)
it is trained for the target, at the target's values. With `warmstart.stages` it grows through
wider models first, each trained briefly (progressive growth). The warm run's schedule is its
own: its warmup (`warmstart.warmup`) rises from the LR its source ended at, to `warmstart.peak` ×
the target's LR.
Every run checkpoints as it goes, so an interrupted stage resumes.

`train_target` is the one path from a config to a finished target run; the warm-start benchmark
(`analysis.warmstart`) calls it too, with shorter schedules and shifted LRs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from sweep.config import (
    cold_baseline,
    job_config,
    plain,
    run_config,
    source_width,
    target_depth,
)
from sweep.core.checkpoint import load_checkpoint
from sweep.core.hardware import SINGLE, World
from sweep.core.models import ModelConfig
from sweep.core.records import read_record, write_record
from sweep.core.sections import Applied, Sections, TargetComparison, TargetRun, TargetSection
from sweep.core.speedup import speedup
from sweep.core.train import RunConfig, RunResult
from sweep.edges.distributed import process_group
from sweep.edges.tracking import latest_steps
from sweep.grow.choices import Method
from sweep.grow.state import State
from sweep.grow.warmstart import (
    method_settings,
    pad_function_gap,
    source_config,
    warm_optim,
    warm_start,
)
from sweep.stages.plan import StagePlan, StepSeconds, data_parallel_seconds
from sweep.stages.source import digest, source_checkpoint, source_run
from sweep.stages.stage import Context, Driver, Section, Stage, StageError, hparams_tag
from sweep.stages.training import train_logged
from sweep.stages.transfer import Run, point_config

KINDS = ("warm", "cold")


def source_hparams(
    cfg: DictConfig, tuned: dict[str, float], applied: dict[str, float], seed: int
) -> dict[str, float]:
    """The values the warm start's source trains at: the tuned ones where it is the transfer
    check's run (reused, free), else the target's own."""
    return dict(tuned) if source_is_transfer_point(cfg, tuned, seed) else dict(applied)


def source_is_transfer_point(cfg: DictConfig, tuned: dict[str, float], seed: int) -> bool:
    """Whether the source is one of the transfer check's runs (its checkpoint is then the one
    that run saved, and its cost is the check's)."""
    point = Run("mup", source_width(cfg), 0, seed)
    return seed == cfg.seed and source_run(cfg, tuned, seed) == point_config(cfg, tuned, point)


def before_warm(
    cfg: DictConfig,
    hparams: dict[str, float],
    target: RunConfig,
    source: RunConfig,
    source_trained: bool,
) -> list[RunConfig]:
    """What the warm job trains before the target run: its source (unless trained already),
    then each progressive stage."""
    runs, previous = ([] if source_trained else [source]), source
    for width in cfg.warmstart.stages:
        previous = stage_run(cfg, hparams, target, previous, width)
        runs.append(previous)
    return runs


def train_source(
    cfg: DictConfig, run_dir: Path, hparams: dict[str, float], seed: int, world: World = SINGLE
) -> tuple[RunConfig, RunResult, dict[str, torch.Tensor]]:
    """The warm start's source at the tuned HPs (trained once, by the transfer check when it is
    one of its runs, then read from its checkpoint): its run, its result and its weights (read
    back from the checkpoint, so that every process of a data-parallel run holds them whole,
    whatever the sharding)."""
    run = source_run(cfg, hparams, seed)
    return run, *_trained(cfg, run_dir, run, source_checkpoint(run_dir, run), "source", world)


def _trained(
    cfg: DictConfig,
    run_dir: Path,
    run: RunConfig,
    checkpoint: Path,
    label: str,
    world: World,
    init_state: dict[str, torch.Tensor] | None = None,
) -> tuple[RunResult, dict[str, torch.Tensor]]:
    """`run` trained to its checkpoint (or read from it): its result and final weights."""
    name = f"{label} {run.model.d_model}"
    result, _ = train_logged(
        cfg, run_dir, run, name=name, world=world, init_state=init_state, checkpoint_path=checkpoint
    )
    return result, load_checkpoint(checkpoint)["model"]


def grow(
    cfg: DictConfig, state: State, source: ModelConfig, target: ModelConfig, seed: int
) -> State:
    """One growth step by `warmstart.method` with its settings."""
    return warm_start(cfg.warmstart.method, state, source, target, cfg.warmstart, seed)


def warm_init(
    cfg: DictConfig,
    run_dir: Path,
    hparams: dict[str, float],
    target: RunConfig,
    world: World = SINGLE,
    source_values: dict[str, float] | None = None,
) -> tuple[dict[str, torch.Tensor], RunConfig, dict[str, Any]]:
    """The warm run's initial state, the last run it grew from (whose final LR the warm run's
    warmup starts from), and what to record about the method and its cost.

    The source grows into each of `warmstart.stages` in turn, each trained `stage_steps` with
    the warm run's schedule, then into the target. `charged_flops` is what the warm start cost
    beyond what the pipeline spends anyway: the stages, and the source unless it is a transfer
    run. The source trains at `source_values` (default: `hparams`, the target's), the stages at
    `hparams`."""
    ws = cfg.warmstart
    source_values = hparams if source_values is None else source_values
    run, source_result, state = train_source(cfg, run_dir, source_values, target.seed, world)
    shared = source_is_transfer_point(cfg, source_values, target.seed)
    info: dict[str, Any] = {
        "method": str(ws.method),
        "source_width": run.model.d_model,
        "source_layers": run.model.n_layer,
        "source_from_transfer": shared,
        "source_flops": source_result.flops,
        "source_lr": run.optim.lr,
        **method_settings(ws.method, ws),
    }
    if ws.method == Method.shrink_pad_perturb:  # how exactly its padding kept the function
        info["pad_function_gap"] = pad_function_gap(state, run.model, target.model)
    chain, stage_flops = [source_checkpoint(run_dir, run).name], 0
    for width in ws.stages:
        stage = stage_run(cfg, hparams, target, run, width)
        chain.append(digest({"run": stage.to_dict(), "settings": plain(ws)}))
        model = f"stage_w{width}_L{stage.model.n_layer}_s{stage.seed}_{digest(chain)}.ckpt"
        grown = grow(cfg, state, run.model, stage.model, target.seed)
        checkpoint = run_dir / "target" / model
        result, state = _trained(cfg, run_dir, stage, checkpoint, "stage", world, grown)
        stage_flops += result.flops
        run = stage
    info |= {
        "stages": list(ws.stages),
        "stage_steps": ws.stage_steps,
        "stage_flops": stage_flops,
        "charged_flops": stage_flops + (0 if shared else source_result.flops),
    }
    return grow(cfg, state, run.model, target.model, target.seed), run, info


def stage_run(
    cfg: DictConfig, hparams: dict[str, float], target: RunConfig, grown_from: RunConfig, width: int
) -> RunConfig:
    """A progressive stage: the target at `width`, `stage_steps` at the warm run's schedule."""
    ws = cfg.warmstart
    model = source_config(target.model, ws.method, width, ws.stack_factor)
    optim = run_config(cfg, width, "mup", hparams, ws.stage_steps, target.seed).optim
    return replace(
        target,
        model=model,
        steps=ws.stage_steps,
        optim=warm_optim(optim, grown_from.optim, grown_from.steps, warmup=ws.warmup, peak=ws.peak),
    )


def train_target(
    cfg: DictConfig,
    run_dir: Path,
    hparams: dict[str, float],
    *,
    warm: bool,
    checkpoint: Path,
    seed: int,
    steps: int,
    lr_scale: float = 1.0,
    wandb_name: str | None = None,
    job_type: str | None = None,
    world: World = SINGLE,
    source_values: dict[str, float] | None = None,
    width: int | None = None,
    **train_options: Any,
) -> dict[str, Any]:
    """One target run at `hparams`: config → warm start (from a source trained at
    `source_values`, default `hparams`) or a cold init → checkpointed training → its record.

    `lr_scale` multiplies the LR of the target run only (the source keeps its values); `width`
    trains a cold run of the target's length and depth at another width (a rung of the check).
    `train_options` go to `train` (e.g. `branch_from` and `snapshots`: a WSD run of this length
    decayed from a longer one's snapshot, and the snapshots a long run keeps for that).
    The record holds the run's history, the method's settings and the source's cost. Under a
    data-parallel `world` every process calls this alike; only the main one logs to W&B.
    """
    kind = "warm" if warm else "cold"
    scaled = hparams | {"lr": hparams["lr"] * lr_scale}
    width = cfg.ladder.target if width is None else width
    run = run_config(cfg, width, "mup", scaled, steps, seed, target_depth(cfg))
    init_state, info = None, {"method": str(Method.cold)}
    if warm:
        if width != cfg.ladder.target:
            raise ValueError(f"a warm start grows into the target's width, not {width}")
        source = hparams if source_values is None else source_values
        init_state, run, info = warm_run(cfg, run_dir, hparams, run, world, source)
    config = {"width": width, "parametrization": "mup", "warmstart": kind, **scaled}
    name = wandb_name or f"target-{kind}"
    result, _ = train_logged(
        cfg,
        run_dir,
        run,
        name=name,
        job_type=job_type or f"target-{kind}",
        wandb_config=config | info,
        world=world,
        init_state=init_state,
        checkpoint_path=checkpoint,
        checkpoint_every=cfg.ladder.eval_every,
        **train_options,
    )
    return target_record(kind, seed, scaled, run, result, info)


def warm_run(
    cfg: DictConfig,
    run_dir: Path,
    hparams: dict[str, float],
    run: RunConfig,
    world: World,
    source_values: dict[str, float],
) -> tuple[dict[str, torch.Tensor], RunConfig, dict[str, Any]]:
    """The warm run's initial state, the run on its own schedule (its warmup rising from the
    LR the model it grew from ended at), and what to record about the warm start."""
    init_state, grown_from, info = warm_init(cfg, run_dir, hparams, run, world, source_values)
    ws = cfg.warmstart
    optim = warm_optim(
        run.optim, grown_from.optim, grown_from.steps, warmup=ws.warmup, peak=ws.peak
    )
    return init_state, replace(run, optim=optim), info


def target_record(
    kind: str,
    seed: int,
    hparams: dict[str, float],
    run: RunConfig,
    result: RunResult,
    info: dict[str, Any],
) -> dict[str, Any]:
    """A target run's record: the values it trained at, history, the warm start's settings and
    what it charged, and the schedule it trained on."""
    return {
        "kind": kind,
        "seed": seed,
        "steps": run.steps,
        "hparams": {k: float(v) for k, v in hparams.items()},
        "log2_lr": math.log2(hparams["lr"]),
        "warmstart": info,
        "result": result.to_dict(),
        "source_flops": info.get("charged_flops", 0),
        "flops_per_step": result.flops / max(1, result.steps_done),
        "schedule": {
            "lr": run.optim.lr,
            "schedule": run.optim.schedule,
            "warmup_steps": run.optim.warmup_steps,
            "warmup_from": run.optim.warmup_from,
        },
    }


def target_key(kind: str, hparams: Mapping[str, float]) -> str:
    """A target run's file name (without suffix): its kind and the values it trains at."""
    return f"{kind}_{hparams_tag(hparams)}"


def target_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Submitit job: the stage's warm or cold run; returns its record."""
    cfg = job_config(spec["cfg"])
    run_dir, kind = Path(spec["run_dir"]), spec["kind"]
    torch.set_num_threads(cfg.launcher.cpus_per_task)
    with process_group(cfg.hardware.device, cfg.hardware.data_parallel) as world:
        return train_target(
            cfg,
            run_dir,
            spec["hparams"],
            warm=kind == "warm",
            checkpoint=run_dir / "target" / f"{target_key(kind, spec['hparams'])}.ckpt",
            seed=cfg.seed,
            steps=cfg.ladder.target_steps,
            world=world,
            source_values=spec["source_hparams"],
        )


def target_run_summary(record: Mapping[str, Any]) -> TargetRun:
    """A target run's figures, from its record."""
    result = RunResult(**record["result"])
    out = TargetRun(
        final_val_loss=result.final_val_loss,
        status=result.status,
        val_curve=[list(p) for p in result.val_loss],
        flops=result.flops,
        tokens_per_s=result.tokens_per_s,
        mfu=result.mfu,
        devices=result.devices,
    )
    if "schedule" in record:
        out["schedule"] = record["schedule"]
    return out


def target_flops(runs: Mapping[str, Mapping[str, Any]]) -> int:
    """The target runs' FLOPs and what their warm starts charged."""
    return sum(run["result"]["flops"] + run["source_flops"] for run in runs.values())


def target_summary(
    cfg: DictConfig,
    runs: Mapping[str, Mapping[str, Any]],
    applied: Applied,
    tuning_flops: float = 0.0,
) -> TargetSection | TargetComparison:
    """The target's warm and cold runs, the values they trained at beside the carried-over ones,
    how the warm start was made, and once both have trained, the warm start's speedup (with and
    without what it and the tuning cost)."""
    summary = TargetSection(
        width=cfg.ladder.target,
        n_layer=target_depth(cfg),
        method=str(cfg.warmstart.method),
        source_width=source_width(cfg),
        applied=applied,
        **{kind: target_run_summary(run) for kind, run in runs.items()},
    )
    info = runs.get("warm", {}).get("warmstart", {})
    for key in ("pad_function_gap", "source_from_transfer", "stages", "source_lr"):
        if key in info:  # e.g. how exactly shrink-pad-perturb's padding kept the function
            summary[key] = info[key]
    if info.get("source_from_transfer") and applied["log2_lr_shift"]:
        summary["source_note"] = (
            f"the source is the transfer check's run at the tuned LR, free; one trained at the "
            f"target's LR would cost {info['source_flops']:.3g} FLOPs "
            f"({info['source_flops'] / runs['warm']['result']['flops']:.1%} of the warm run)"
        )
    if "warm" not in runs or "cold" not in runs:
        return summary
    per_step = runs["cold"]["flops_per_step"]
    compared = speedup(
        summary["warm"]["val_curve"],
        summary["cold"]["val_curve"],
        source_steps_equiv=runs["warm"]["source_flops"] / per_step,
        tuning_steps_equiv=tuning_flops / per_step,
    )
    return TargetComparison(**summary, **compared)


def kinds(cfg: DictConfig) -> tuple[str, ...]:
    """The target runs the configuration asks for: warm, with the cold baseline beside it unless
    a budget leaves it out (`warmstart.baseline`), or cold alone (no warm start)."""
    if cfg.warmstart.method == Method.cold:
        return ("cold",)
    return KINDS if cold_baseline(cfg) else ("warm",)


def wanted_kind(cfg: DictConfig) -> str:
    """The run a user wants: the warm one, or the cold one when there is no warm start."""
    return "cold" if cfg.warmstart.method == Method.cold else "warm"


class TargetStage(Stage):
    """The warm and cold runs at the target; the progress line counts their training steps,
    read from the jobs' logs as they train."""

    name = "target"

    def records(self, ctx: Context) -> dict[str, dict[str, Any]]:
        """The warm and cold runs made at the values applied now."""
        folder, hparams = ctx.run_dir / self.name, ctx.applied["hparams"]
        found = {k: read_record(folder / f"{target_key(k, hparams)}.json") for k in KINDS}
        return {kind: record for kind, record in found.items() if record is not None}

    def run(self, ctx: Context, driver: Driver) -> None:
        folder, hparams, steps = (
            ctx.run_dir / self.name,
            ctx.applied["hparams"],
            ctx.cfg.ladder.target_steps,
        )
        source = source_hparams(ctx.cfg, ctx.require_tuned(), hparams, ctx.cfg.seed)
        common = {"cfg": plain(ctx.cfg), "run_dir": str(ctx.run_dir), "hparams": hparams}
        specs = [common | {"kind": kind, "source_hparams": source} for kind in kinds(ctx.cfg)]
        finished = set(self.records(ctx)) & {s["kind"] for s in specs}
        todo = [s for s in specs if s["kind"] not in finished]
        task = driver.progress.add_task(
            self.name,
            total=len(specs) * steps,
            completed=len(finished) * steps,
            msg=" + ".join(s["kind"] for s in todo),
        )
        started, losses = time.time(), {}

        def poll() -> None:
            done = {kind: steps for kind in finished}
            for log in (ctx.run_dir / "jobs" / self.name).glob("*_0_log.out"):
                if log.stat().st_mtime >= started:  # this invocation's jobs
                    for name, (step, _) in latest_steps(log.read_text(errors="replace")).items():
                        if name.startswith("target-"):  # not the source's or a stage's lines
                            done.setdefault(name.removeprefix("target-"), step)
            parts = [
                f"{kind} val loss {losses[kind]:.4f}"
                if kind in losses
                else f"{kind} {step}/{steps}"
                for kind, step in sorted(done.items())
            ]
            driver.progress.update(task, completed=sum(done.values()), msg=", ".join(parts))

        def on_result(spec: dict, result: dict | None, error: BaseException | None) -> None:
            if error is not None:
                raise StageError(f"target run {spec['kind']}: {error}") from error
            write_record(folder / f"{target_key(spec['kind'], hparams)}.json", result)
            finished.add(spec["kind"])
            losses[spec["kind"]] = result["result"]["val_loss"][-1][1]
            poll()

        driver.launch(self.name, target_job, todo, on_result, on_poll=poll, parallel=True)

    def plan(self, ctx: Context, step_seconds: StepSeconds) -> StagePlan:
        """The runs still owed, with the source and progressive stages the warm one trains
        first (the source free when it is the transfer check's run, trained or planned)."""
        cfg, tuned, ladder = ctx.cfg, ctx.tuned_or_default(), ctx.cfg.ladder
        hparams = ctx.applied_or_default()
        done = self.records(ctx) if ctx.tuned is not None else {}
        todo = [k for k in kinds(cfg) if k not in done]
        target = run_config(
            cfg, ladder.target, "mup", hparams, ladder.target_steps, cfg.seed, target_depth(cfg)
        )
        runs = [target] * len(todo)
        source = source_run(cfg, source_hparams(cfg, tuned, hparams, cfg.seed), cfg.seed)
        shared = source_is_transfer_point(cfg, tuned, cfg.seed)
        trained = source_checkpoint(ctx.run_dir, source).exists() or (
            shared and "transfer" in ctx.planned
        )
        if "warm" in todo:  # trained inside the warm job, before it
            runs += before_warm(cfg, hparams, target, source, trained)
        flops = sum(r.flops for r in runs)
        seconds = data_parallel_seconds(runs, step_seconds, cfg, len(todo))
        through = "".join(f" → {w}" for w in cfg.warmstart.stages)
        note = f"warm start {cfg.warmstart.method} from width {source.model.d_model}{through}"
        note += " (the transfer check's run)" if shared else ""
        wanted = target.flops if wanted_kind(cfg) in todo else 0.0
        return StagePlan(
            self.name, len(todo), len(runs), flops, len(runs), flops, seconds, note, wanted
        )

    def summary(self, ctx: Context, so_far: Sections) -> Section | None:
        if ctx.tuned is None or not (runs := self.records(ctx)):
            return None
        tuning_flops = so_far.get("cost", {}).get("tuning_flops", 0.0)
        section = target_summary(ctx.cfg, runs, ctx.applied, tuning_flops)
        return Section(self.name, section, target_flops(runs), "target_flops")
