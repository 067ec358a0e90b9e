"""What a stage is: one object that the driver runs, the plan estimates and the summary reads.

Every stage answers the same questions from what is on disk (`Context`): whether it is skipped
and why, its plan estimate, how it runs, and its summary section with what it cost. Most stages
are grids of runs (`GridStage`): what they have done (`read`), what is left (`todo`), how the
runs are dealt to jobs (`specs`) and the job that trains them (`job`), in rounds until nothing is
left. The driver (`sweep.pipeline`) keeps the order, the refusals and the progress display; the
content of a stage lives in its own module, registered in `sweep.stages.registry`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Protocol

import optuna
import torch
from omegaconf import DictConfig

from sweep.config import (
    LauncherKind,
    job_config,
    plain,
    run_config,
    target_depth,
)
from sweep.core.records import read_record, write_record
from sweep.core.sections import Applied, Sections, Summary
from sweep.core.train import RunConfig
from sweep.edges.tracking import latest_steps
from sweep.stages.applied import applied_values
from sweep.stages.training import train_logged


def tuned_hparams(cfg: DictConfig, study: optuna.Study) -> dict[str, float]:
    """The proxy's best hyperparameters: what every later stage carries to other widths."""
    return dict(cfg.ladder.hparams) | study.best_params


def hparams_tag(hparams: Mapping[str, float]) -> str:
    """A short name for the tuned values the runs are made with."""
    blob = json.dumps(sorted((k, float(v)) for k, v in hparams.items()))
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


class StageError(RuntimeError):
    """A stage that cannot run (e.g. its inputs are missing); its message says what to do."""


@dataclass
class Context:
    """What a stage reads: the config, the run folder, the study, the stages this invocation
    runs. Made anew for each stage, so the tuned values are those of the study as it is then."""

    cfg: DictConfig
    run_dir: Path
    study: optuna.Study
    planned: tuple[str, ...] = ()
    sections: Callable[[], Sections] | None = None  # the summary of the stages done so far

    @cached_property
    def tuned(self) -> dict[str, float] | None:
        """The tuned values once a trial has completed; None before."""
        if any(t.state.name == "COMPLETE" for t in self.study.get_trials(deepcopy=False)):
            return tuned_hparams(self.cfg, self.study)
        return None

    def require_tuned(self) -> dict[str, float]:
        if self.tuned is None:
            raise StageError("no completed tuning trial in the study: run the tune stage first")
        return self.tuned

    @cached_property
    def applied(self) -> Applied:
        """The values the target trains at (`sweep.stages.applied`): the tuned ones moved by
        what the axes stage fitted, once it has."""
        axes = self.sections().get("axes") if self.sections is not None else None
        return applied_values(self.cfg, self.require_tuned(), axes)

    def applied_or_default(self) -> dict[str, float]:
        """The target's values, or before tuning the ladder's defaults (for the plan)."""
        return self.applied["hparams"] if self.tuned is not None else self.tuned_or_default()

    def tuned_or_default(self) -> dict[str, float]:
        """The tuned values, or before tuning the ladder's defaults (the grids' shapes and costs
        do not depend on the LR they are centred on)."""
        return self.tuned if self.tuned is not None else dict(self.cfg.ladder.hparams)


@dataclass(frozen=True)
class Section:
    """A stage's part of the summary: its key there, its content, and the FLOPs it spent (under
    `cost_key` in the summary's `cost`; None: it spends none)."""

    key: str
    content: Mapping[str, object]  # its type in sweep.core.sections (a TuneSection, ...)
    flops: float | None = None
    cost_key: str = ""
    amends: Mapping[str, Mapping[str, object]] = field(default_factory=dict)  # earlier sections


class Driver(Protocol):
    """What a stage may ask of the driver: jobs, a progress line, a note."""

    progress: Any  # sweep.edges.console.StageDisplay

    def launch(
        self, name: str, fn: Callable, specs: list[dict], on_result: Callable, on_poll=None,
        parallel: bool = False,
    ) -> None: ...  # fmt: skip

    def report_errors(self) -> Callable: ...

    def summary(self) -> Summary: ...

    def write_summary(self, summary: Summary) -> None: ...


class Stage:
    """One stage of the pipeline. Subclasses set `name` and implement `run`, `plan` and
    `summary`; `skipped` says why a stage has nothing to do in this configuration."""

    name: ClassVar[str]

    def skipped(self, ctx: Context) -> str | None:
        return None

    def run(self, ctx: Context, driver: Driver) -> None:
        raise NotImplementedError

    def plan(self, ctx: Context, step_seconds: Callable[[RunConfig], float]) -> Any:
        raise NotImplementedError  # a sweep.stages.plan.StagePlan

    def summary(self, ctx: Context, so_far: Sections) -> Section | None:
        """Its section once complete (None before), given the sections of the stages before."""
        return None


def target_run_flops(cfg: DictConfig) -> int:
    """What one target run costs (the unit the other checks' costs are given in)."""
    ladder = cfg.ladder
    return run_config(
        cfg, ladder.target, "mup", dict(ladder.hparams), ladder.target_steps, cfg.seed,
        target_depth(cfg),
    ).flops  # fmt: skip


def job_count(cfg: DictConfig, runs: int) -> int:
    """How many jobs `runs` runs are dealt to: a few long-lived ones locally (each process pays
    seconds of imports), one per run on a cluster."""
    if cfg.launcher.kind == LauncherKind.local:
        return min(runs, cfg.launcher.max_parallel)
    return runs


class GridStage(Stage):
    """A stage made of runs whose results decide the next ones: rounds of `todo` → jobs until
    nothing is left or `max_rounds` is spent; a run that fails is retried by the next
    invocation. The jobs write their own result files."""

    parallel: ClassVar[bool] = False  # target-size runs: data-parallel over the launcher's GPUs

    def read(self, ctx: Context) -> Mapping:
        raise NotImplementedError

    def todo(self, ctx: Context, done: Mapping) -> list:
        raise NotImplementedError

    def specs(self, ctx: Context, todo: list) -> list[dict]:
        raise NotImplementedError

    def job(self, spec: dict[str, Any]) -> Any:
        raise NotImplementedError

    def max_rounds(self, ctx: Context) -> int:
        raise NotImplementedError

    def complete(self, ctx: Context, done: Mapping) -> bool:
        return bool(done) and not self.todo(ctx, done)

    def progress(self, ctx: Context, done: Mapping) -> str:
        return f"{len(done)} runs"

    def run_steps(self, ctx: Context) -> int:
        """The training steps of one run where the bar counts steps (long runs: it moves as
        they train); 0 where it counts finished runs."""
        return 0

    def training(self, ctx: Context, since: float) -> dict[str, int]:
        """{run: steps trained} of the runs this invocation's jobs are training now, read from
        the jobs' logs (written since `since`); finished runs are `read`'s."""
        out: dict[str, int] = {}
        for log in (ctx.run_dir / "jobs" / self.name).glob("*_log.out"):
            if log.stat().st_mtime >= since:
                for name, (step, total) in latest_steps(log.read_text(errors="replace")).items():
                    if step < total:
                        out[name] = step
        return out

    def run(self, ctx: Context, driver: Driver) -> None:
        if reason := self.skipped(ctx):
            driver.progress.add_task(self.name, total=None, msg=f"skipped: {reason}")
            return
        per, started = self.run_steps(ctx), time.time()
        done = self.read(ctx)
        todo = self.todo(ctx, done)
        total = (len(done) + len(todo)) * max(1, per)
        task = driver.progress.add_task(
            self.name, total=total, completed=len(done) * max(1, per), msg=self.progress(ctx, done)
        )

        def poll() -> None:
            done = self.read(ctx)
            msg = self.progress(ctx, done)
            if not per:
                driver.progress.update(task, completed=len(done), msg=msg)
                return
            live = self.training(ctx, started)
            msg += "".join(f"; {name} {step}/{per}" for name, step in sorted(live.items()))
            completed = len(done) * per + sum(live.values())
            driver.progress.update(task, completed=completed, msg=msg)

        for _ in range(self.max_rounds(ctx)):
            done = self.read(ctx)
            todo = self.todo(ctx, done)
            if not todo:
                break
            grown = (len(done) + len(todo)) * max(1, per)
            if grown > total:  # a grid extended toward an optimum it had not bracketed
                driver.progress.note(
                    f"{self.name}: {len(todo)} more runs (the grids grow until each optimum is "
                    f"bracketed): {len(done) + len(todo)} in all"
                )
                total = grown
            driver.progress.update(task, total=total)
            specs = self.specs(ctx, todo)
            driver.launch(
                self.name, self.job, specs, driver.report_errors(), poll, parallel=self.parallel
            )
        poll()
        if todo:
            raise StageError(
                f"{len(todo)} {self.name} runs failed (see {ctx.run_dir / 'jobs' / self.name}); "
                "rerun the same command to retry them"
            )


class PointGrid(GridStage):
    """A grid of short runs at ladder shapes (a dataclass `run_type` each), dealt round-robin to
    jobs, each run's result one file under `folder` named by `key` (which holds a hash of the
    tuned values): the transfer check and the axes rungs."""

    folder: ClassVar[str]
    run_type: ClassVar[type]

    def key(self, run: Any, tag: str) -> str:
        raise NotImplementedError

    def point(self, cfg: DictConfig, tuned: Mapping[str, float], run: Any) -> RunConfig:
        """The training run of one grid point."""
        raise NotImplementedError

    def wandb_name(self, cfg: DictConfig, run: Any, config: RunConfig) -> str:
        return self.key(run, "").rstrip("_")

    def checkpoint(
        self, cfg: DictConfig, run_dir: Path, tuned: Mapping[str, float], config: RunConfig
    ) -> Path | None:
        """Where a point keeps its final state (the warm start's source); None: nowhere."""
        return None

    def specs(self, ctx: Context, todo: list) -> list[dict]:
        """Deal the runs to jobs round-robin, so each gets a mix of cheap and dear ones."""
        container, n_jobs = plain(ctx.cfg), max(1, job_count(ctx.cfg, len(todo)))
        runs = [asdict(run) for run in todo]
        return [
            {"cfg": container, "run_dir": str(ctx.run_dir), "hparams": ctx.require_tuned(),
             "runs": runs[i::n_jobs]}
            for i in range(n_jobs)
            if runs[i::n_jobs]
        ]  # fmt: skip

    def job(self, spec: dict[str, Any]) -> list[str]:
        """Submitit job: train its runs, writing each result file as soon as it is done. A
        killed job loses only the run it was training; the rerun skips the files that exist."""
        cfg = job_config(spec["cfg"])
        run_dir, tuned = Path(spec["run_dir"]), spec["hparams"]
        torch.set_num_threads(cfg.launcher.cpus_per_task)
        tag, done = hparams_tag(tuned), []
        for fields in spec["runs"]:
            run = self.run_type(**fields)
            path = run_dir / self.folder / f"{self.key(run, tag)}.json"
            if read_record(path) is None:  # not trained yet, or damaged: train it (again)
                write_record(path, self.train_point(cfg, run_dir, tuned, run))
            done.append(path.stem)
        return done

    def train_point(
        self, cfg: DictConfig, run_dir: Path, tuned: dict[str, float], run: Any
    ) -> dict[str, Any]:
        """One point: its final validation loss (NaN if it diverged), LR, λ, FLOPs, tokens/s."""
        config = self.point(cfg, tuned, run)
        name = self.wandb_name(cfg, run, config)
        log2_lr = math.log2(config.optim.lr)
        wandb_config = {**asdict(run), "log2_lr": log2_lr, **tuned, "lr": config.optim.lr}
        wandb_config["weight_decay"] = config.optim.weight_decay
        result, _ = train_logged(
            cfg,
            run_dir,
            config,
            name=name,
            job_type=self.folder,
            wandb_config=wandb_config,
            checkpoint_path=self.checkpoint(cfg, run_dir, tuned, config),
        )
        return {
            "run": asdict(run),
            "log2_lr": log2_lr,
            "weight_decay": config.optim.weight_decay,
            "loss": result.final_val_loss if result.status == "completed" else math.nan,
            "flops": result.flops,
            "tokens_per_s": result.tokens_per_s,
        }
