"""The plan: what each stage would run from what is on disk now, before anything trains.

For every stage: its jobs, its training runs and their FLOPs (§7 of docs/methods.md) and a wall
time estimated from step times measured on this machine. Stages whose work depends on results
(the transfer grids grow until each optimum is bracketed, the tuned range widens at a bound, the
check at the target grows until bracketed) give what they start with and the most they may
reach. The run that follows trains exactly the planned runs of tune (with no pruner) and target,
and between the two counts for transfer and verify.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import torch
from omegaconf import DictConfig

from sweep.config import RUN_STAGES, Stage, data_config, execution, run_config, target_depth
from sweep.core.data import load_corpus
from sweep.core.flops import training_flops
from sweep.core.models import ModelConfig
from sweep.core.parametrization import PARAMETRIZATIONS
from sweep.core.train import RunConfig, train
from sweep.stages import axes
from sweep.stages.source import source_checkpoint, source_run
from sweep.stages.target import KINDS, source_is_transfer_point, stage_run
from sweep.stages.transfer import extra_seeds, grid_seeds, next_runs, read_results
from sweep.stages.tune import COUNTED, trial_budget, tuned_hparams
from sweep.stages.verify import next_steps, read_curve

StepSeconds = Callable[[RunConfig], float]


@dataclass
class StagePlan:
    stage: str
    jobs: int
    runs: int  # the runs it starts with (all it will run, where nothing depends on results)
    flops: float  # their training FLOPs (pruning only lowers it)
    max_runs: int  # the most it may reach (grids grown to their budget, ranges widened)
    max_flops: float
    seconds: float  # estimated wall time of `runs`, from step times measured here
    note: str = ""


def plan(
    cfg: DictConfig, run_dir: Path, study: optuna.Study, step_seconds: StepSeconds
) -> list[StagePlan]:
    """The plan of the stages listed besides `plan` (all of them when it stands alone)."""
    stages = [s for s in cfg.stages if s != Stage.plan] or list(RUN_STAGES)
    tuned = tuned_or_default(cfg, study)
    planners = {
        Stage.tune: lambda: plan_tune(cfg, study, step_seconds),
        Stage.transfer: lambda: plan_transfer(cfg, run_dir, tuned, step_seconds),
        Stage.axes: lambda: plan_axes(cfg, run_dir, tuned, step_seconds),
        Stage.target: lambda: plan_target(cfg, run_dir, tuned, step_seconds),
        Stage.verify: lambda: plan_verify(cfg, run_dir, tuned, step_seconds),
        Stage.report: lambda: StagePlan("report", 0, 0, 0.0, 0, 0.0, 0.0, "coordinate check"),
    }
    return [planners[Stage(s)]() for s in stages]


def tuned_or_default(cfg: DictConfig, study: optuna.Study) -> dict[str, float]:
    """The tuned values once tuning has finished; before, the ladder's defaults stand in (the
    grids' shapes and costs do not depend on the LR they are centred on)."""
    if any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        return tuned_hparams(cfg, study)
    return dict(cfg.ladder.hparams)


def _flops(run: RunConfig) -> int:
    return training_flops(run.model, run.steps * run.tokens_per_step)


def _seconds(runs: list[RunConfig], step_seconds: StepSeconds, parallel: int) -> float:
    return sum(run.steps * step_seconds(run) for run in runs) / max(1, parallel)


def parallel_jobs(cfg: DictConfig) -> int:
    gpus = cfg.launcher.gpus_per_node
    return 1 if cfg.launcher.kind == "debug" else gpus or cfg.launcher.max_parallel


def plan_tune(cfg: DictConfig, study: optuna.Study, step_seconds: StepSeconds) -> StagePlan:
    ladder = cfg.ladder
    counted = len(study.get_trials(deepcopy=False, states=COUNTED))
    trials = max(0, trial_budget(cfg, study) - counted)
    bounds_left = 2 * len(ladder.search) - len(study.user_attrs.get("widened", []))
    most = trials + cfg.tune.widen_trials * max(0, bounds_left)
    run = run_config(
        cfg, ladder.widths[0], "mup", dict(ladder.hparams), ladder.tune_steps, cfg.seed
    )
    workers = min(cfg.tune.workers, trials) if trials else 0
    note = f"{counted} trials done" if counted else ""
    return StagePlan(
        "tune",
        workers,
        trials,
        trials * _flops(run),
        most,
        most * _flops(run),
        _seconds([run] * trials, step_seconds, min(workers, parallel_jobs(cfg)) or 1),
        note,
    )


def plan_transfer(
    cfg: DictConfig, run_dir: Path, tuned: dict[str, float], step_seconds: StepSeconds
) -> StagePlan:
    ladder = cfg.ladder
    done = read_results(run_dir / "transfer", tuned)
    first = next_runs(cfg, done)
    noise_seeds = set(extra_seeds(cfg))
    # every series ends with its noise seeds at its best point, unless it has them already
    noise = [
        (p, w)
        for p in PARAMETRIZATIONS
        for w in ladder.widths
        for _ in range(ladder.noise_seeds)
        if not any(
            (r.parametrization, r.width) == (p, w) and r.seed in noise_seeds
            for r in [*done, *first]
        )
    ]
    per_series = ladder.lr_max_points * len(grid_seeds(cfg)) + ladder.noise_seeds
    most = max(0, len(PARAMETRIZATIONS) * len(ladder.widths) * per_series - len(done))

    def config(width: int, p: str) -> RunConfig:
        return run_config(cfg, width, p, tuned, ladder.transfer_steps, cfg.seed)

    runs = [config(r.width, r.parametrization) for r in first] + [config(w, p) for p, w in noise]
    widest = config(ladder.widths[-1], "mup")
    local = cfg.launcher.kind == "local"
    jobs = min(len(first), cfg.launcher.max_parallel) if local else len(first)
    return StagePlan(
        "transfer",
        jobs,
        len(runs),
        sum(_flops(r) for r in runs),
        most,
        sum(_flops(r) for r in runs) + (most - len(runs)) * _flops(widest),
        _seconds(runs, step_seconds, parallel_jobs(cfg)),
        f"{len(done)} runs done" if done else "",
    )


def plan_axes(
    cfg: DictConfig, run_dir: Path, tuned: dict[str, float], step_seconds: StepSeconds
) -> StagePlan:
    """The first round of every rung's grid; at most, every series at `lr_max_points` (twice
    with the weight-decay grids), which `axes.budget` bounds."""
    done = axes.read_results(run_dir / "axes", tuned)
    first = [axes.rung_run(cfg, tuned, run) for run in axes.next_runs(cfg, tuned, done)]
    kept = axes.kept_rungs(cfg)
    series = 2 if cfg.axes.weight_decay and tuned["weight_decay"] > 0 else 1
    worst = [
        axes.rung_run(cfg, tuned, axes.AxisRun(axis, rung, 0, None, seed))
        for axis in axes.AXES
        for rung in kept[axis]
        for seed in grid_seeds(cfg)
        for _ in range(series * cfg.ladder.lr_max_points)
    ]
    dropped = [
        f"{axis} ×{r:g}" for axis in axes.AXES for r in cfg.axes[axis] if float(r) not in kept[axis]
    ]
    rungs = ", ".join(
        f"{axis} ×{'/'.join(f'{r:g}' for r in kept[axis])}" for axis in axes.AXES if kept[axis]
    )
    note = f"at width {cfg.ladder.widths[0]}: {rungs}" if rungs else "no axis asked"
    if dropped:
        note += f"; past axes.budget, left out: {', '.join(dropped)}"
    local = cfg.launcher.kind == "local"
    jobs = min(len(first), cfg.launcher.max_parallel) if local else len(first)
    return StagePlan(
        "axes",
        jobs,
        len(first),
        sum(_flops(r) for r in first),
        len(worst),
        sum(_flops(r) for r in worst),
        _seconds(first, step_seconds, parallel_jobs(cfg)),
        note,
    )


def plan_target(
    cfg: DictConfig, run_dir: Path, tuned: dict[str, float], step_seconds: StepSeconds
) -> StagePlan:
    ladder = cfg.ladder
    kinds = [k for k in KINDS if k != "warm" or cfg.warmstart.method != "cold"]
    todo = [k for k in kinds if not (run_dir / "target" / f"{k}.json").is_file()]
    target = run_config(
        cfg, ladder.target, "mup", tuned, ladder.target_steps, cfg.seed, target_depth(cfg)
    )
    runs = [target] * len(todo)
    source = source_run(cfg, tuned, cfg.seed)
    shared = source_is_transfer_point(cfg, tuned, cfg.seed)
    planned = [s for s in cfg.stages if s != Stage.plan] or list(RUN_STAGES)
    trained = source_checkpoint(run_dir, source).exists() or (shared and Stage.transfer in planned)
    if "warm" in todo:  # trained inside the warm job, before it
        runs += [] if trained else [source]
        previous = source
        for width in cfg.warmstart.stages:
            previous = stage_run(cfg, tuned, target, previous, width)
            runs.append(previous)
    flops = sum(_flops(r) for r in runs)
    seconds = _seconds(runs, step_seconds, 1) / max(1, min(len(todo), cfg.launcher.max_parallel))
    through = "".join(f" → {w}" for w in cfg.warmstart.stages)
    note = f"warm start {cfg.warmstart.method} from width {source.model.d_model}{through}"
    note += " (the transfer check's run)" if shared else ""
    return StagePlan("target", len(todo), len(runs), flops, len(runs), flops, seconds, note)


def plan_verify(
    cfg: DictConfig, run_dir: Path, tuned: dict[str, float], step_seconds: StepSeconds
) -> StagePlan:
    max_runs = cfg.verify.max_runs
    if max_runs < 2:
        return StagePlan("verify", 0, 0, 0.0, 0, 0.0, 0.0, "skipped: verify.max_runs < 2")
    curve = {k: 0.0 for k in read_curve(run_dir, tuned)}
    first = [k for k in next_steps(curve | {0: 0.0}, max_runs) if k != 0]
    done = len([k for k in curve if k != 0])
    run = run_config(
        cfg, cfg.ladder.target, "mup", tuned, cfg.ladder.target_steps, cfg.seed, target_depth(cfg)
    )
    most = max(0, max_runs - done)
    return StagePlan(
        "verify",
        len(first),
        len(first),
        len(first) * _flops(run),
        most,
        most * _flops(run),
        _seconds([run] * len(first), step_seconds, len(first)),
        f"the target at the tuned LR × 2^±{cfg.ladder.lr_resolution:g}",
    )


def measured_step_seconds(cfg: DictConfig, steps: int = 3) -> StepSeconds:
    """Seconds per training step of a run's model, measured here once per shape (a warm-up
    step, then `steps` timed ones; cached by model shape)."""
    cache: dict[ModelConfig, float] = {}
    corpus = load_corpus(data_config(cfg))

    def step_seconds(run: RunConfig) -> float:
        key = replace(run.model, parametrization="mup")  # SP costs what µP costs
        if key not in cache:
            probe = replace(run, model=key, steps=steps + 1, eval_every=steps + 1, eval_batches=1)
            start = time.perf_counter()
            result, _ = train(probe, corpus, execution=execution(cfg))
            total = time.perf_counter() - start
            cache[key] = (
                total / probe.steps
                if math.isnan(result.tokens_per_s)
                else (probe.tokens_per_step / result.tokens_per_s)
            )
        return cache[key]

    return step_seconds


def plan_record(stages: list[StagePlan], run_dir: Path) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir),
        "stages": [asdict(s) for s in stages],
        "total": {
            "jobs": sum(s.jobs for s in stages),
            "runs": sum(s.runs for s in stages),
            "flops": sum(s.flops for s in stages),
            "max_flops": sum(s.max_flops for s in stages),
            "seconds": sum(s.seconds for s in stages),
        },
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
    }
