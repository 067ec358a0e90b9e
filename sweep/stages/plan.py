"""The plan: what each stage would run from what is on disk now, before anything trains.

For every stage (its `plan` method): its jobs, its training runs and their FLOPs (§7 of
docs/methods.md) and a wall time from those FLOPs and a throughput (`sweep.core.throughput`):
stated for a device, or measured once here on two small reference steps. Stages
whose work depends on results (the transfer grids grow until each optimum is bracketed, the
tuned range widens at a bound, the check at the target grows until bracketed) give what they
start with and the most they may reach. The run that follows trains exactly the planned runs of
tune (with no pruner) and target, and between the two counts for transfer and verify.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig

from sweep.config import LauncherKind, world_size
from sweep.core.throughput import Throughput
from sweep.core.train import RunConfig

if TYPE_CHECKING:
    from sweep.stages.stage import Context, Stage

StepSeconds = Callable[[RunConfig], float]


@dataclass
class StagePlan:
    stage: str
    jobs: int
    runs: int  # the runs it starts with (all it will run, where nothing depends on results)
    flops: float  # their training FLOPs (pruning only lowers it)
    max_runs: int  # the most it may reach (grids grown to their budget, ranges widened)
    max_flops: float
    seconds: float  # estimated wall time of `runs`, from their FLOPs and the throughput
    note: str = ""
    wanted_flops: float = 0.0  # of those FLOPs, the run a user wants (the warm target's)


def plan(stages: Sequence[Stage], ctx: Context, step_seconds: StepSeconds) -> list[StagePlan]:
    """Each stage's estimate, in order."""
    return [stage.plan(ctx, step_seconds) for stage in stages]


def estimated_seconds(runs: list[RunConfig], step_seconds: StepSeconds, parallel: int) -> float:
    return sum(run.steps * step_seconds(run) for run in runs) / max(1, parallel)


def data_parallel_seconds(
    runs: list[RunConfig], step_seconds: StepSeconds, cfg: DictConfig, jobs: int
) -> float:
    """Target-size runs, each spread over the launcher's processes (each process steps through
    its share of the batch), `jobs` of them at once up to the launcher's parallelism."""
    world = world_size(cfg)
    shares = [replace(r, batch_size=max(1, r.batch_size // world)) for r in runs]
    return estimated_seconds(shares, step_seconds, min(jobs, cfg.launcher.max_parallel))


def parallel_jobs(cfg: DictConfig) -> int:
    """How many jobs run at once: one on the debug launcher, one per GPU, else the launcher's
    parallelism."""
    gpus = cfg.launcher.gpus_per_node
    return 1 if cfg.launcher.kind == LauncherKind.debug else gpus or cfg.launcher.max_parallel


def plan_record(
    stages: list[StagePlan],
    run_dir: Path,
    target_flops: float,
    throughput: Throughput,
    budget: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The plan as `plan.json` holds it: per stage and in all, each cost also in target runs
    (`target_flops` one run), the most the checks may spend besides the one target run a user
    wants, the throughput its times come from, and the budget's allocation
    (`sweep.stages.budget`; None: no budget)."""
    flops = sum(s.flops for s in stages)
    most = sum(s.max_flops for s in stages)
    wanted = sum(s.wanted_flops for s in stages)
    return {
        "run_dir": str(run_dir),
        "stages": [asdict(s) | {"max_flops_vs_target": s.max_flops / target_flops} for s in stages],
        "total": {
            "jobs": sum(s.jobs for s in stages),
            "runs": sum(s.runs for s in stages),
            "flops": flops,
            "max_flops": most,
            "seconds": sum(s.seconds for s in stages),
            "max_flops_vs_target": most / target_flops,
            "max_besides_target": (most - wanted) / target_flops,
        },
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "throughput": throughput.to_dict(),
        "budget": budget,
    }
