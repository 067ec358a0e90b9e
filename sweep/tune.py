"""The tune stage: an Optuna study over the proxy's hyperparameters, pruned on validation loss.

The study lives in persistent storage (SQLite in the run folder unless `tune.storage` names
another), so a crashed or interrupted stage continues with the trials it still owes. Diverged
trials are recorded (user attribute `status`) and pruned, so the sampler learns the region is bad.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import torch
from omegaconf import DictConfig, OmegaConf
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from sweep.config import data_config, run_config
from sweep.data import load_corpus
from sweep.tracking import log_result, wandb_run
from sweep.train import train

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)  # trials that count toward n_trials


HEARTBEAT_SECONDS = 30  # a worker that misses its heartbeats for GRACE_SECONDS is presumed dead
GRACE_SECONDS = 120


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
        heartbeat_interval=HEARTBEAT_SECONDS,
        grace_period=GRACE_SECONDS,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(3),
    )


def study_name(cfg: DictConfig) -> str:
    return cfg.tune.study_name or cfg.run_name or cfg.ladder.name


def make_sampler(cfg: DictConfig, worker: int = 0) -> optuna.samplers.BaseSampler:
    seed = cfg.tune.seed + worker  # workers must not draw the same startup points
    if cfg.tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.tune.n_startup_trials)


def make_pruner(cfg: DictConfig) -> optuna.pruners.BasePruner:
    ladder = cfg.ladder
    if cfg.tune.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=cfg.tune.n_startup_trials, n_warmup_steps=ladder.eval_every
        )
    if cfg.tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=ladder.eval_every, max_resource=ladder.tune_steps
        )
    return optuna.pruners.NopPruner()


def load_study(cfg: DictConfig, run_dir: Path, worker: int = 0) -> optuna.Study:
    return optuna.create_study(
        study_name=study_name(cfg),
        storage=make_storage(cfg, run_dir),
        direction="minimize",
        sampler=make_sampler(cfg, worker),
        pruner=make_pruner(cfg),
        load_if_exists=True,
    )


def suggest(trial: optuna.Trial, ladder: DictConfig) -> dict[str, float]:
    """The ladder's fixed hyperparameters, with the searched ones drawn by the trial."""
    hparams = dict(ladder.hparams)
    for name, space in ladder.search.items():
        hparams[name] = trial.suggest_float(name, space.low, space.high, log=space.log)
    return hparams


def tuned_hparams(cfg: DictConfig, study: optuna.Study) -> dict[str, float]:
    """The proxy's best hyperparameters: what every later stage carries to other widths."""
    return dict(cfg.ladder.hparams) | study.best_params


def objective(trial: optuna.Trial, cfg: DictConfig, run_dir: Path) -> float:
    ladder = cfg.ladder
    hparams = suggest(trial, ladder)
    run = run_config(cfg, ladder.widths[0], "mup", hparams, ladder.tune_steps, cfg.seed)

    def report(step: int, val: float) -> bool:
        trial.report(val, step)
        return trial.should_prune()

    config = {"width": ladder.widths[0], "parametrization": "mup", "trial": trial.number, **hparams}
    with wandb_run(
        cfg.logger, run_dir, run_dir.name, "tune", f"trial-{trial.number}", config
    ) as wb:
        result, _ = train(run, load_corpus(data_config(cfg)), on_eval=report)
        log_result(wb, result)
    trial.set_user_attr("status", result.status)
    trial.set_user_attr("flops", result.flops)
    trial.set_user_attr("steps", result.steps_done)
    if result.status != "completed":  # pruned by the pruner, or diverged
        raise optuna.TrialPruned(result.reason)
    return result.final_val_loss


def tune_worker(spec: dict[str, Any]) -> int:
    """Submitit job: run its quota of trials on the shared study, stopping early if the study
    already holds `n_trials` (counting the trials other workers are running)."""
    cfg = OmegaConf.create(spec["cfg"])
    run_dir = Path(spec["run_dir"])
    torch.set_num_threads(cfg.launcher.cpus_per_task)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_study(cfg, run_dir, spec.get("worker", 0))
    study.optimize(
        lambda trial: objective(trial, cfg, run_dir),
        n_trials=spec.get("quota", cfg.tune.n_trials),  # this worker's share of what is left
        # running trials count too, so parallel workers do not overshoot the total
        callbacks=[MaxTrialsCallback(cfg.tune.n_trials, states=(*COUNTED, TrialState.RUNNING))],
        catch=(),
    )
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def fail_stale_trials(study: optuna.Study) -> int:
    """Mark trials left RUNNING by a killed single-worker run as failed, so they are redone."""
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL)
    return len(stale)


def tune_summary(study: optuna.Study) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    status = [t.user_attrs.get("status") for t in trials]
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    return {
        "best_params": study.best_params if complete else {},
        "best_value": study.best_value if complete else math.nan,
        "n_trials": len(complete) + sum(t.state is TrialState.PRUNED for t in trials),
        "n_complete": len(complete),
        "n_pruned": sum(s == "stopped" for s in status),
        "n_diverged": sum(s == "diverged" for s in status),
        "n_failed": sum(t.state is TrialState.FAIL for t in trials),
        "flops": sum(t.user_attrs.get("flops", 0) for t in trials),
    }
