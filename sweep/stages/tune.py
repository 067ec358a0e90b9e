"""The tune stage: an Optuna study over the proxy's hyperparameters, pruned on validation loss.

The study lives in persistent storage (SQLite in the run folder unless `tune.storage` names
another), so a crashed or interrupted stage continues with the trials it still owes. Diverged
trials are recorded (user attribute `status`) and pruned, so the sampler learns the region is bad.

Every trial checkpoints its training (`trials/<lineage>.ckpt`). A trial whose worker died — killed,
preempted, or silent past the SQL heartbeat's grace period — is failed and retried with the same
parameters and intermediate values (`RetryHeartbeatStaleTrialCallback`); the retry inherits the user
attribute `lineage` (the first trial's number), finds that checkpoint and continues from it.
"""

from __future__ import annotations

import math
import sqlite3
import uuid
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
import torch
from omegaconf import DictConfig
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from sweep.config import (
    Pruner,
    Sampler,
    job_config,
    plain,
    public,
    run_config,
    tunable,
)
from sweep.core.sections import NearBest, SearchRange, Sections, TuneSection
from sweep.edges.tracking import code_version, run_link
from sweep.stages.plan import StagePlan, StepSeconds, estimated_seconds, parallel_jobs
from sweep.stages.stage import Context, Driver, Section, Stage, StageError
from sweep.stages.training import train_logged

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)  # trials that count toward n_trials
RETRIES = 3  # how many times one trial is retried after its worker died
ROUNDS = 3  # rounds of workers the stage starts before it gives up on the trials owed


# heartbeats and their retry callback are "experimental" in Optuna 5 and warn at every use
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def retry_callback() -> optuna.storages.RetryHeartbeatStaleTrialCallback:
    """Re-queues a dead worker's trial: same parameters, user attributes, intermediate values."""
    return optuna.storages.RetryHeartbeatStaleTrialCallback(
        RETRIES, inherit_intermediate_values=True
    )


def storage_url(cfg: DictConfig, run_dir: Path) -> str:
    """`tune.storage`: null (SQLite in the run folder), "journal" (a file there), or a URL."""
    if cfg.tune.storage == "journal":
        return "journal"
    return cfg.tune.storage or f"sqlite:///{(run_dir / 'study.db').resolve()}"


def make_storage(cfg: DictConfig, run_dir: Path) -> optuna.storages.BaseStorage | str:
    """The study's storage. A journal file serves workers on one host (file locks); an SQL
    server serves workers across hosts, with heartbeats so a killed worker's trial is retried."""
    url = storage_url(cfg, run_dir)
    if url == "journal":
        backend = optuna.storages.journal.JournalFileBackend(str(run_dir / "study.journal"))
        return optuna.storages.JournalStorage(backend)
    if url.startswith("sqlite"):
        return url
    return optuna.storages.RDBStorage(
        url,
        heartbeat_interval=cfg.tune.heartbeat_s,
        grace_period=cfg.tune.grace_s,
        heartbeat_stale_trial_callback=retry_callback(),
    )


def check_study_file(cfg: DictConfig, run_dir: Path) -> None:
    """Raise when the study's SQLite file in the run folder is damaged anywhere (SQLite's
    `quick_check` reads every page): Optuna opens a file damaged past its header and fails
    later, in the middle of a stage."""
    path = run_dir / "study.db"
    if cfg.tune.storage is not None or not path.exists():
        return
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        found = [row[0] for row in connection.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as e:
        raise ValueError(f"{path} is damaged: {e}") from None
    finally:
        connection.close()
    if found != ["ok"]:
        raise ValueError(f"{path} is damaged: {found[0]}")


def study_name(cfg: DictConfig) -> str:
    return cfg.tune.study_name or cfg.run_name or cfg.ladder.name


def make_sampler(cfg: DictConfig, worker: int = 0) -> optuna.samplers.BaseSampler:
    base = cfg.seed if cfg.tune.seed is None else cfg.tune.seed  # one seed for the experiment
    seed = base + worker  # workers must not draw the same startup points
    if cfg.tune.sampler == Sampler.random:
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.tune.n_startup_trials)


def make_pruner(cfg: DictConfig) -> optuna.pruners.BasePruner:
    ladder = cfg.ladder
    if cfg.tune.pruner == Pruner.median:
        return optuna.pruners.MedianPruner(
            n_startup_trials=cfg.tune.n_startup_trials, n_warmup_steps=ladder.eval_every
        )
    if cfg.tune.pruner == Pruner.hyperband:
        return optuna.pruners.HyperbandPruner(
            min_resource=ladder.eval_every, max_resource=ladder.tune_steps
        )
    return optuna.pruners.NopPruner()


def open_or_create_study(cfg: DictConfig, run_dir: Path, worker: int = 0) -> optuna.Study:
    """The run's study in its storage, created there on first use with the composed config and
    the code's version in its user attributes (for the dashboard, and for whoever opens it)."""
    study = optuna.create_study(
        study_name=study_name(cfg),
        storage=make_storage(cfg, run_dir),
        direction="minimize",
        sampler=make_sampler(cfg, worker),
        pruner=make_pruner(cfg),
        load_if_exists=True,
    )
    if "config" not in study.user_attrs:
        study.set_user_attr("config", public(cfg))
        study.set_user_attr("code_version", code_version())
    return study


BOUND_MARGIN = 0.02  # a value this close to a bound (as a fraction of its range) sits at it


def search_space(cfg: DictConfig, study: optuna.Study) -> dict[str, SearchRange]:
    """The ladder's search ranges of the HPs that change its model (`config.tunable`), with the
    bounds this study has widened."""
    names = tunable(cfg)
    space = {
        name: SearchRange(low=float(r.low), high=float(r.high), log=bool(r.log))
        for name, r in cfg.ladder.search.items()
        if name in names
    }
    return space | study.user_attrs.get("search", {})


def suggest(
    trial: optuna.Trial, fixed: dict[str, float], space: Mapping[str, SearchRange]
) -> dict[str, float]:
    """The fixed hyperparameters, with the searched ones drawn by the trial."""
    hparams = dict(fixed)
    for name, r in space.items():
        hparams[name] = trial.suggest_float(name, r["low"], r["high"], log=r["log"])
    return hparams


def position(value: float, r: SearchRange) -> float:
    """Where `value` lies in its range, 0 at the low bound and 1 at the high one (log-scaled
    ranges measured in log)."""
    scale = math.log if r["log"] else float
    return (scale(value) - scale(r["low"])) / (scale(r["high"]) - scale(r["low"]))


def at_bounds(params: Mapping[str, float], space: Mapping[str, SearchRange]) -> dict[str, str]:
    """{name: "low" or "high"} for each tuned value that sits at a bound of its range: the
    optimum may lie beyond it."""
    out = {}
    for name, value in params.items():
        if name in space:
            u = position(value, space[name])
            if u <= BOUND_MARGIN or u >= 1 - BOUND_MARGIN:
                out[name] = "low" if u <= BOUND_MARGIN else "high"
    return out


def widened(r: SearchRange, side: str) -> SearchRange:
    """The range pushed out past one bound: ×4 (log-scaled) or by its own width (kept >= 0 when
    it started so)."""
    low, high, width = r["low"], r["high"], r["high"] - r["low"]
    if side == "low":
        low = low / 4 if r["log"] else (max(0.0, low - width) if low >= 0 else low - width)
    else:
        high = high * 4 if r["log"] else high + width
    return SearchRange(low=low, high=high, log=r["log"])


def widen_at_bounds(cfg: DictConfig, study: optuna.Study) -> list[str]:
    """Widen every range whose tuned value sits at a bound not widened before, recording the new
    ranges in the study (so its workers and later runs search them); returns "name:side" for
    each bound widened. Nothing when `tune.widen_trials` is 0 or no trial completed."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if cfg.tune.widen_trials <= 0 or not complete:
        return []
    space, done = search_space(cfg, study), set(study.user_attrs.get("widened", []))
    new = [f"{n}:{side}" for n, side in at_bounds(study.best_params, space).items()]
    new = [item for item in new if item not in done]
    for item in new:
        name, side = item.split(":")
        space[name] = widened(space[name], side)
    if new:
        changed = {item.split(":")[0] for item in new} | set(study.user_attrs.get("search", {}))
        study.set_user_attr("search", {name: space[name] for name in sorted(changed)})
        study.set_user_attr("widened", sorted(done | set(new)))
    return new


def trial_budget(cfg: DictConfig, study: optuna.Study) -> int:
    """`tune.n_trials`, plus `tune.widen_trials` for every bound the study has widened."""
    return cfg.tune.n_trials + cfg.tune.widen_trials * len(study.user_attrs.get("widened", []))


def near_best(study: optuna.Study, band: float) -> NearBest | dict[str, float]:
    """How flat the study's best region is: the complete trials within `band` of the best
    value and, for each tuned parameter, the range they span. A wide range means the loss
    barely depends on that value near the optimum."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return {}
    best = min(t.value for t in complete)
    close = [t for t in complete if t.value <= best + band]
    names = sorted(close[0].params)
    return NearBest(
        band=band,
        trials=len(close),
        ranges={
            name: [min(t.params[name] for t in close), max(t.params[name] for t in close)]
            for name in names
        },
    )


def trial_checkpoint(run_dir: Path, trial: optuna.Trial) -> Path:
    """The checkpoint of the trial's lineage: a retried trial continues its first try's run."""
    lineage = trial.user_attrs.get("lineage", trial.number)
    trial.set_user_attr("lineage", lineage)
    return run_dir / "trials" / f"{lineage}.ckpt"


def objective(trial: optuna.Trial, cfg: DictConfig, run_dir: Path, worker_tag: str) -> float:
    ladder = cfg.ladder
    trial.set_user_attr("worker", worker_tag)
    hparams = suggest(trial, dict(ladder.hparams), search_space(cfg, trial.study))
    run = run_config(cfg, ladder.widths[0], "mup", hparams, ladder.tune_steps, cfg.seed)

    def report(step: int, val: float) -> bool:
        trial.report(val, step)
        return trial.should_prune()

    config = {"width": ladder.widths[0], "parametrization": "mup", "trial": trial.number, **hparams}

    def link(wb: Any) -> None:
        if url := run_link(wb):
            trial.set_user_attr("wandb", url)

    checkpoint = trial_checkpoint(run_dir, trial)
    result, _ = train_logged(
        cfg,
        run_dir,
        run,
        name=f"trial-{trial.number}",
        job_type="tune",
        wandb_config=config,
        on_wandb=link,
        on_eval=report,
        checkpoint_path=checkpoint,
        checkpoint_every=ladder.eval_every,
    )
    checkpoint.unlink()  # the trial's outcome goes to the study next; its weights are not needed
    trial.set_user_attr("resumed_from", result.resumed_from)
    trial.set_user_attr("status", result.status)
    trial.set_user_attr("flops", result.flops)
    trial.set_user_attr("steps", result.steps_done)
    trial.set_user_attr("tokens_per_s", result.tokens_per_s)
    if result.status != "completed":  # pruned by the pruner, or diverged
        raise optuna.TrialPruned(result.reason)
    return result.final_val_loss


def tune_worker(spec: dict[str, Any]) -> int:
    """Submitit job: run its quota of trials on the shared study, stopping early if the study
    already holds `n_trials` (counting the trials other workers are running).

    `spec["tag"]` names this job across requeues: a job that SLURM preempted and requeued finds
    the trial it was running under its tag, retries it (from its checkpoint) and owes only what
    its quota still lacks.
    """
    cfg = job_config(spec["cfg"])
    run_dir = Path(spec["run_dir"])
    torch.set_num_threads(cfg.launcher.cpus_per_task)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_or_create_study(cfg, run_dir, spec.get("worker", 0))
    tag = spec.get("tag", "")
    mine = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("worker") == tag]
    retry_trials(study, [t for t in mine if t.state is TrialState.RUNNING])
    budget = trial_budget(cfg, study)
    owed = spec.get("quota", budget) - sum(t.state in COUNTED for t in mine)
    if owed > 0:
        study.optimize(
            lambda trial: objective(trial, cfg, run_dir, tag),
            n_trials=owed,  # this worker's share of what is left
            # running trials count too, so parallel workers do not overshoot the total
            callbacks=[MaxTrialsCallback(budget, states=(*COUNTED, TrialState.RUNNING))],
            catch=(),
        )
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def retry_trials(study: optuna.Study, orphans: list[optuna.trial.FrozenTrial]) -> int:
    """Fail trials whose worker died and queue their retries (same parameters, same lineage)."""
    retry = retry_callback()
    for trial in orphans:
        study.tell(trial.number, state=TrialState.FAIL)
        retry(study, trial)
    return len(orphans)


def retry_running_trials(study: optuna.Study) -> int:
    """Fail and retry every RUNNING trial. Only for when no worker is running: then every
    RUNNING trial is an orphan whose worker died (Optuna's `fail_stale_trials` instead fails
    only the trials whose heartbeat went stale)."""
    return retry_trials(study, study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def tune_summary(cfg: DictConfig, study: optuna.Study) -> TuneSection:
    """The best trial, where it sits in the search ranges, and how the trials ended."""
    trials = study.get_trials(deepcopy=False)
    status = [t.user_attrs.get("status") for t in trials]
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    space = search_space(cfg, study)
    return TuneSection(
        best_params=study.best_params if complete else {},
        at_bound=at_bounds(study.best_params, space) if complete else {},
        widened=list(study.user_attrs.get("widened", [])),
        search=space,
        best_value=study.best_value if complete else math.nan,
        n_trials=len(complete) + sum(t.state is TrialState.PRUNED for t in trials),
        n_complete=len(complete),
        n_pruned=sum(s == "stopped" for s in status),
        n_diverged=sum(s == "diverged" for s in status),
        n_failed=sum(t.state is TrialState.FAIL for t in trials),
    )


def tuning_flops(study: optuna.Study) -> int:
    """What every trial spent, pruned and failed ones included."""
    return sum(t.user_attrs.get("flops", 0) for t in study.get_trials(deepcopy=False))


class TuneStage(Stage):
    """The study's trials, then, while a tuned value sits at a bound of its range, that range
    widened and `tune.widen_trials` more trials (once per bound)."""

    name = "tune"

    def run(self, ctx: Context, driver: Driver) -> None:
        study = ctx.study
        retry_running_trials(study)

        def status() -> tuple[int, str]:
            trials = study.get_trials(deepcopy=False, states=COUNTED)
            values = [t.value for t in trials if t.value is not None]
            return len(trials), f"best val loss {min(values):.4f}" if values else "no trial yet"

        done, msg = status()
        task = driver.progress.add_task(
            self.name, total=trial_budget(ctx.cfg, study), completed=done, msg=msg
        )

        def poll() -> None:
            done, msg = status()
            driver.progress.update(task, completed=done, msg=msg)

        self.trials_until(ctx, driver, trial_budget(ctx.cfg, study), poll)
        while widened := widen_at_bounds(ctx.cfg, study):
            driver.progress.update(task, total=trial_budget(ctx.cfg, study))
            driver.progress.note(
                f"tuned values at a bound of their range: {', '.join(widened)}; the range is "
                f"widened and {ctx.cfg.tune.widen_trials} more trials search it"
            )
            self.trials_until(ctx, driver, trial_budget(ctx.cfg, study), poll)

    def trials_until(self, ctx: Context, driver: Driver, total: int, poll: Callable) -> None:
        """Workers on the study until it counts `total` trials; a round whose workers died
        short of it is redone."""
        study, workers = ctx.study, ctx.cfg.tune.workers
        invocation = uuid.uuid4().hex[:8]  # tags this driver's workers apart from earlier ones
        for round_ in range(ROUNDS):
            remaining = total - len(study.get_trials(deepcopy=False, states=COUNTED))
            if remaining <= 0:
                break
            # quotas that add up to exactly what is owed, so parallel workers cannot overshoot
            quotas = [remaining // workers + (i < remaining % workers) for i in range(workers)]
            specs = [
                {"cfg": plain(ctx.cfg), "run_dir": str(ctx.run_dir), "quota": quota,
                 "worker": round_ * workers + i, "tag": f"{invocation}-{round_}-{i}"}
                for i, quota in enumerate(quotas)
                if quota > 0
            ]  # fmt: skip
            driver.launch(self.name, tune_worker, specs, driver.report_errors(), on_poll=poll)
            retry_running_trials(study)  # every worker has ended: a RUNNING trial is an orphan
        poll()
        counted = len(study.get_trials(deepcopy=False, states=COUNTED))
        if counted < total:
            raise StageError(
                f"tune reached {counted} of {total} trials after {ROUNDS} rounds of workers; "
                f"see {ctx.run_dir / 'jobs' / self.name}"
            )

    def plan(self, ctx: Context, step_seconds: StepSeconds) -> StagePlan:
        cfg, study, ladder = ctx.cfg, ctx.study, ctx.cfg.ladder
        counted = len(study.get_trials(deepcopy=False, states=COUNTED))
        trials = max(0, trial_budget(cfg, study) - counted)
        bounds_left = 2 * len(ladder.search) - len(study.user_attrs.get("widened", []))
        most = trials + cfg.tune.widen_trials * max(0, bounds_left)
        run = run_config(
            cfg, ladder.widths[0], "mup", dict(ladder.hparams), ladder.tune_steps, cfg.seed
        )
        workers = min(cfg.tune.workers, trials) if trials else 0
        return StagePlan(
            self.name,
            workers,
            trials,
            trials * run.flops,
            most,
            most * run.flops,
            estimated_seconds([run] * trials, step_seconds, min(workers, parallel_jobs(cfg)) or 1),
            f"{counted} trials done" if counted else "",
        )

    def summary(self, ctx: Context, so_far: Sections) -> Section | None:
        if not ctx.study.get_trials(deepcopy=False):
            return None
        return Section(
            self.name, tune_summary(ctx.cfg, ctx.study), tuning_flops(ctx.study), "tuning_flops"
        )
