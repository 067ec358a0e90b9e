"""The validation of a composed config, before any job.

Every config group under `conf/` extends one of these schemas, so a typo or a wrong type fails at
composition. `validate` checks what types cannot (a ladder that does not grow, an empty LR grid,
a log-scaled bound that is not positive, a NaN, a run folder outside out_root, ...) before any
job is submitted, and names the field: `FIELD_CHECKS` maps every field to the check that covers
it, `EXEMPT` every field that any value of its type suits to the reason why.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweep.config.build import (
    data_config,
    model_config,
    source_width,
    target_depth,
    with_vocabulary,
)
from sweep.config.hardware import check_hardware
from sweep.config.hydra import available_ladders
from sweep.config.records import public_url
from sweep.config.schema import TUNABLE, ModelKind, StageName
from sweep.core import custom
from sweep.core.data import check_corpus_fits, load_corpus
from sweep.grow.choices import Method, Sampling, SourceModel
from sweep.grow.warmstart import source_config


def check_warmstart(cfg: DictConfig) -> None:
    """A warm start whose source can be built and grown into the target (the values of
    shrink, perturb and noise alone are `validate`'s domains)."""
    cfg = with_vocabulary(cfg)
    ws, ladder = cfg.warmstart, cfg.ladder
    widths = list(ladder.widths)
    if str(ws.source) not in {*SourceModel, *map(str, widths)}:
        raise ValueError(
            "warmstart.source must be widest, proxy or a ladder width "
            f"({', '.join(map(str, widths))}), got {ws.source!r}"
        )
    width = source_width(cfg)
    path = [width, *ws.stages, ladder.target]
    if ws.stages and (
        ws.method in (Method.stack, Method.cold) or any(a >= b for a, b in itertools.pairwise(path))
    ):
        raise ValueError(
            f"warmstart.stages ({list(ws.stages)}) must be widths between the source "
            f"({width}) and the target ({ladder.target}), increasing, grown by a method that "
            "grows width (not stack or cold)"
        )
    stratified = ws.method == Method.rc_sampling and ws.sampling == Sampling.stratified
    for small, large in itertools.pairwise(path):
        if stratified and large % small:
            raise ValueError(
                f"warmstart.sampling=stratified copies each unit of a width as many times as the "
                f"next width holds it: {large} must be a multiple of {small} (ladder.target, "
                "warmstart.source, warmstart.stages); use warmstart.sampling=iid or other widths"
            )
    target = model_config(cfg, ladder.target, "mup", dict(ladder.hparams), target_depth(cfg))
    for w in path[:-1]:  # the source and every stage can be built
        source_config(target, ws.method, w, ws.stack_factor)


@dataclass(frozen=True)
class Domain:
    """The values one field may take on its own; floats must also be finite (a NaN or an inf
    from the command line would otherwise surface as a diverged run, or not at all)."""

    accepts: Callable[[Any], bool]
    allowed: str  # what the message says is allowed, e.g. ">= 0"
    optional: bool = False  # null is allowed too

    def check(self, name: str, value: Any) -> None:
        if value is None and self.optional:
            return
        allowed = self.allowed + (" (or null)" if self.optional else "")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number {allowed}; got {value}")
        if value is None or not self.accepts(value):
            raise ValueError(f"{name} must be {allowed}; got {value!r}")


def positive(optional: bool = False) -> Domain:
    return Domain(lambda v: v > 0, "> 0", optional)


def at_least(low: float, optional: bool = False) -> Domain:
    return Domain(lambda v: v >= low, f">= {low}", optional)


def within(low: float, high: float) -> Domain:
    return Domain(lambda v: low <= v <= high, f"in [{low}, {high}]")


SEED = Domain(lambda v: 0 <= v < 2**32, "in [0, 2**32)")  # what Optuna's samplers and NumPy take


WANDB_FORBIDDEN = "/\\#?%:"  # characters W&B refuses in a project name


HPARAM_DOMAINS = {  # also the bounds of every search range
    "lr": positive(),
    "init_std": positive(),
    "output_std": positive(),
    "alpha_in": positive(),
    "alpha_out": positive(),
    "alpha_attn": positive(),
    "weight_decay": at_least(0),
}


def _check_ladder_chosen(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg, "ladder"):
        raise ValueError(
            "no ladder chosen: add +ladder=NAME, one of " + ", ".join(available_ladders())
        )


def _check_stages(cfg: DictConfig) -> None:
    stages = [str(s) for s in cfg.stages]
    if not stages or len(set(stages)) < len(stages):
        raise ValueError(
            f"stages must list each stage to run once, from {', '.join(StageName)}; got {stages}"
        )


def _check_run_folder(cfg: DictConfig) -> None:
    """The run folder, `out_root/run_name` (run_name null: the ladder's name), must lie inside
    out_root: every result, checkpoint and log is written there."""
    name, value = ("run_name", cfg.run_name) if cfg.run_name else ("ladder.name", cfg.ladder.name)
    relative = PurePath(value)
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(
            f"{name} must be a relative folder name inside out_root, without '..'; got {value!r}"
        )
    root = Path(cfg.out_root).resolve()
    folder = (root / relative).resolve()  # a symbolic link may still lead out
    if folder == root or not folder.is_relative_to(root):
        raise ValueError(
            f"{name} must name a folder inside out_root ({root}); {value!r} resolves to {folder}"
        )
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{name} must name a folder; {folder} is a file")


def writable_folder(name: str, folder: Path) -> None:
    """Refuse a folder that is a file, or that cannot be created or written to (probed with a
    temporary file). Whatever the probe created is removed again, whether it passes or not:
    validation leaves the disk as it found it."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{name} must be a writable folder; {folder} is a file")
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".musweep-probe-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ValueError(
            f"{name} must be a writable folder; cannot write in {folder}: {reason}"
        ) from None
    finally:
        for path in created:
            with contextlib.suppress(OSError):
                path.rmdir()


def _check_folders(cfg: DictConfig) -> None:
    """Every folder the run writes to outside the run folder (data.path is read: its own check)."""
    writable_folder("out_root", Path(cfg.out_root))
    if cfg.data.cache_dir:
        writable_folder("data.cache_dir", Path(cfg.data.cache_dir).expanduser())
    if cfg.logger.dir:
        writable_folder("logger.dir", Path(cfg.logger.dir))


def _check_ladder_shape(cfg: DictConfig) -> None:
    """Widths that grow to the target, and a model that can be built at each of them."""
    cfg = with_vocabulary(cfg)
    ladder = cfg.ladder
    widths = list(ladder.widths)
    if not widths or widths != sorted(set(widths)) or widths[0] <= 0:
        raise ValueError(f"ladder.widths must be positive and strictly increasing; got {widths}")
    if ladder.target <= widths[-1]:
        raise ValueError(
            f"ladder.target ({ladder.target}) must be wider than every ladder width "
            f"(the proxy is {widths[0]}, the widest {widths[-1]})"
        )
    for width in widths:  # the model configs check heads, base, depth, ...
        model_config(cfg, width, "mup", dict(ladder.hparams))
    model_config(cfg, ladder.target, "mup", dict(ladder.hparams), target_depth(cfg))


def _check_verify_width(cfg: DictConfig) -> None:
    """A rung for the check at the target: narrower than the target, and a model that builds
    at its width and the target's depth."""
    width = cfg.verify.width
    if width is None:
        return
    if not (isinstance(width, int) and 0 < width < cfg.ladder.target):
        raise ValueError(
            f"verify.width must be a width below the target's ({cfg.ladder.target}); got {width}"
        )
    cfg = with_vocabulary(cfg)
    try:
        model_config(cfg, width, "mup", dict(cfg.ladder.hparams), target_depth(cfg))
    except ValueError as error:
        raise ValueError(f"verify.width={width}: {error}") from None


def _check_model(cfg: DictConfig) -> None:
    """A custom model that imports, builds at the base width, maps token ids to logits of the
    vocabulary, has width dimensions, an identifiable readout, and CompleteP's keyword when its
    depth changes (its µP itself is judged by the coordinate check before the first stage)."""
    if cfg.model.kind != ModelKind.custom:
        for name in ("factory", "readout"):
            if cfg.model[name] is not None:
                raise ValueError(f"model.{name} applies to model=custom only")
        return
    cfg = with_vocabulary(cfg)
    ladder = cfg.ladder
    base = model_config(cfg, ladder.widths[0], "mup", dict(ladder.hparams))
    custom.check_custom(base)
    hparams = dict(ladder.hparams)
    custom.check_builds_at(base, list(ladder.widths))  # every width the jobs will build
    target = model_config(cfg, ladder.target, "mup", hparams, target_depth(cfg))
    custom.check_builds_at(target, [ladder.target, source_width(cfg)])
    for depth in {target_depth(cfg), ladder.n_layer}:
        config = model_config(cfg, ladder.widths[0], "mup", dict(ladder.hparams), depth)
        if config.n_layer != config.depth_base and not custom.names(
            config.factory, custom.DEPTH_KEYWORD
        ):
            raise ValueError(
                f"model.factory: a model {depth} deep with HPs tuned at depth "
                f"{config.depth_base} needs CompleteP's branch multiplier; let the factory "
                f"take {custom.DEPTH_KEYWORD}= (multiply each residual branch by it)"
            )


def _check_rungs(cfg: DictConfig) -> None:
    """Rungs are finite multiples > 0 (1 is the proxy itself, always measured), and a batch
    rung gives whole sequences per batch and whole steps at the proxy's tokens."""
    ladder = cfg.ladder
    for axis in ("horizon", "batch"):
        for rung in cfg.axes[axis]:
            if not (math.isfinite(rung) and rung > 0):
                raise ValueError(f"axes.{axis}: every rung must be a multiple > 0, got {rung}")
            if axis == "horizon" and round(ladder.tune_steps * rung) < 1:
                raise ValueError(f"axes.horizon: rung {rung:g} trains no step")
            if axis == "batch" and (
                (ladder.batch_size * rung) % 1 or (ladder.tune_steps / rung) % 1
            ):
                raise ValueError(
                    f"axes.batch: rung {rung:g} must give whole sequences per batch "
                    f"({ladder.batch_size} × {rung:g}) and whole steps at the proxy's tokens "
                    f"({ladder.tune_steps} / {rung:g})"
                )


def _check_lr_grid(cfg: DictConfig) -> None:
    ladder = cfg.ladder
    if ladder.lr_span < 1 or ladder.lr_max_points < 2 * ladder.lr_span + 1:
        raise ValueError(
            f"ladder.lr_span must be >= 1 and ladder.lr_max_points at least the first grid's "
            f"2 * lr_span + 1 points; got lr_span={ladder.lr_span}, "
            f"lr_max_points={ladder.lr_max_points}"
        )


def _check_search(cfg: DictConfig) -> None:
    """Each range names a tunable HP and lies inside that HP's domain."""
    for name, space in cfg.ladder.search.items():
        if name not in TUNABLE:
            raise ValueError(f"ladder.search key must be one of {', '.join(TUNABLE)}; got {name!r}")
        for bound in ("low", "high"):
            if not math.isfinite(space[bound]):
                raise ValueError(f"ladder.search.{name}.{bound} must be finite; got {space[bound]}")
        if not space.low < space.high:
            raise ValueError(f"ladder.search.{name}: low ({space.low}) must be below high")
        if space.log and space.low <= 0:
            raise ValueError(
                f"ladder.search.{name}: log-scaled bounds must be > 0; got low={space.low}"
            )
        HPARAM_DOMAINS[name].check(f"ladder.search.{name}.low", space.low)


def _check_storage(cfg: DictConfig) -> None:
    storage = cfg.tune.storage
    if storage not in (None, "journal") and "://" not in storage:
        raise ValueError(
            "tune.storage must be null (SQLite in the run folder), journal, or a database URL "
            f"(dialect://...); got {public_url(storage)!r}"
        )
    sqlite = storage is None or str(storage).startswith("sqlite")
    if cfg.tune.workers > 1 and sqlite:
        raise ValueError(
            f"tune.workers={cfg.tune.workers} cannot share an SQLite study: SQLite locks the "
            "whole file per write and fails under concurrent writers. Use tune.storage=journal "
            "(workers on one host) or tune.storage=postgresql+psycopg://... (workers across hosts)"
        )


def _check_heartbeat(cfg: DictConfig) -> None:
    """A worker is presumed dead after `grace_s` without a heartbeat: a grace no longer than
    the heartbeat's period would retry the trials of live workers."""
    tune = cfg.tune
    if not tune.grace_s > tune.heartbeat_s:
        raise ValueError(
            f"tune.grace_s must exceed tune.heartbeat_s ({tune.heartbeat_s}); got {tune.grace_s}"
        )


def _check_corpus(cfg: DictConfig) -> None:
    """The data exist, are what their source says, and are long enough for one window; a
    vocabulary given in `model.vocab_size` holds the corpus's."""
    corpus = load_corpus(data_config(cfg))
    check_corpus_fits(corpus, cfg.ladder.seq_len)
    vocab = cfg.model.vocab_size
    if vocab is not None and vocab < corpus.vocab_size:
        raise ValueError(
            f"model.vocab_size must hold the corpus's {corpus.vocab_size} tokens; got {vocab!r} "
            "(null: the corpus's own)"
        )


Check = Domain | Callable[[DictConfig], None]


# Cross-field checks run in the order of their first entry here: the cheap ones first, the
# corpus (the one slow check) last.
FIELD_CHECKS: dict[str, Check] = {
    "stages": _check_stages,
    "run_name": _check_run_folder,
    "out_root": _check_folders,
    "seed": SEED,
    "ladder.name": _check_run_folder,  # the run folder's name when run_name is null
    "ladder.widths": _check_ladder_shape,
    "ladder.target": _check_ladder_shape,
    "ladder.n_layer": positive(),
    "ladder.target_n_layer": positive(optional=True),
    "ladder.base_n_layer": positive(optional=True),
    "ladder.depth_alpha": within(0.5, 1),  # CompleteP's range (docs/methods.md §1)
    "ladder.d_head": positive(),
    "ladder.mlp_ratio": positive(),
    "ladder.seq_len": positive(),
    "ladder.batch_size": positive(),
    "ladder.tune_steps": positive(),
    "ladder.transfer_steps": positive(),
    "ladder.target_steps": positive(),
    "ladder.eval_every": positive(),
    "ladder.eval_batches": positive(),
    "ladder.warmup_steps": at_least(0),
    "ladder.decay_fraction": Domain(lambda v: 0 < v <= 1, "in (0, 1]"),
    "ladder.lr_resolution": Domain(lambda v: v > 0, "> 0 (a step in log2)"),
    "ladder.lr_span": _check_lr_grid,
    "ladder.lr_max_points": _check_lr_grid,
    "ladder.transfer_seeds": positive(),
    "ladder.noise_seeds": at_least(0),
    "ladder.regret_tolerance": positive(),
    "ladder.resolve_budget": at_least(0),
    "ladder.budget": positive(optional=True),
    "ladder.sp_widths": Domain(
        lambda v: all(isinstance(w, int) and w > 0 for w in v), "positive widths", optional=True
    ),
    "budget": positive(optional=True),
    "hardware.mfu": Domain(lambda v: 0 < v <= 1, "in (0, 1]"),
    "verify.probe_fraction": Domain(lambda v: 0 < v <= 1, "in (0, 1]", optional=True),
    "verify.width": _check_verify_width,
    **{f"ladder.hparams.{name}": domain for name, domain in HPARAM_DOMAINS.items()},
    "ladder.search": _check_search,
    "model.factory": _check_model,
    "model.options": _check_model,
    "model.readout": _check_model,
    "model.embeddings": _check_model,
    "tune.n_trials": positive(),
    "tune.n_startup_trials": at_least(0),
    "tune.storage": _check_storage,
    "tune.workers": positive(),
    "tune.seed": Domain(SEED.accepts, SEED.allowed, optional=True),
    "tune.widen_trials": at_least(0),
    "tune.heartbeat_s": positive(),
    "tune.grace_s": _check_heartbeat,
    "launcher.max_parallel": positive(),
    "launcher.timeout_min": positive(),
    "launcher.cpus_per_task": positive(),
    "launcher.mem_gb": positive(optional=True),
    "launcher.gpus_per_node": check_hardware,
    "launcher.nodes": check_hardware,
    "launcher.tasks_per_node": check_hardware,
    "logger.project": Domain(
        lambda v: len(v) <= 128 and not set(v) & set(WANDB_FORBIDDEN),
        f"at most 128 characters, none of {' '.join(WANDB_FORBIDDEN)}",
        optional=True,
    ),
    "logger.dir": _check_folders,
    "warmstart.shrink": within(0, 1),
    "warmstart.perturb": at_least(0),
    "warmstart.noise": at_least(0),
    "warmstart.stack_factor": at_least(2),
    "warmstart.source": check_warmstart,
    "warmstart.stages": check_warmstart,
    "warmstart.stage_steps": positive(),
    "warmstart.warmup": at_least(0, optional=True),
    "warmstart.peak": positive(),
    "warmstart.sampling": check_warmstart,  # stratified needs a target a multiple of the source
    "hardware.device": check_hardware,
    "hardware.micro_batch_size": check_hardware,
    "hardware.sync_every": check_hardware,
    "hardware.peak_tflops": check_hardware,
    "verify.max_runs": at_least(0),  # below 2 the check is skipped
    "axes.horizon": _check_rungs,
    "axes.batch": _check_rungs,
    "axes.beta": Domain(lambda v: v >= 0, ">= 0 (the LR falls as the tokens grow)", optional=True),
    "axes.kappa": at_least(0),
    "axes.widths": positive(),
    "axes.budget": at_least(0),
    "data.source": _check_corpus,
    "data.path": _check_corpus,
    "data.val_fraction": _check_corpus,
    "data.vocab_size": _check_corpus,
    "model.vocab_size": _check_corpus,
    "data.cache_dir": _check_folders,
}


# Fields whose every value (of their type) is valid, and why.
EXEMPT: dict[str, str] = {
    "model.kind": "an Enum: OmegaConf refuses any other value at composition",
    "model.init": "an Enum: both inits build every model (init=own keeps the factory's)",
    "ladder.schedule": "an Enum: OmegaConf refuses any other value at composition",
    "tune.sampler": "an Enum: OmegaConf refuses any other value at composition",
    "tune.pruner": "an Enum: OmegaConf refuses any other value at composition",
    "tune.study_name": "any string names a study in its storage (null: the run's name)",
    "launcher.kind": "an Enum; the process counts it allows are checked with launcher.nodes, "
    "SLURM's presence when the pipeline starts (check_slurm_present)",
    "launcher.partition": "a SLURM name that sbatch judges (null: the cluster's default)",
    "launcher.account": "a SLURM name that sbatch judges (null: the cluster's default)",
    "launcher.qos": "a SLURM name that sbatch judges (null: the cluster's default)",
    "launcher.constraint": "a SLURM feature expression that sbatch judges",
    "launcher.setup": "shell lines, run as given before each job",
    "launcher.additional": "any other sbatch option, passed on as given",
    "logger.kind": "an Enum: OmegaConf refuses any other value at composition",
    "logger.entity": "any W&B user or team (null: WANDB_ENTITY or the default entity)",
    "logger.mode": "an Enum: OmegaConf refuses any other value at composition",
    "warmstart.method": "an Enum; the source each method needs is checked with stack_factor",
    "axes.weight_decay": "a boolean (the weight-decay grids run only when the tuned λ > 0)",
    "verify.check": "an Enum: OmegaConf refuses any other value at composition",
    "warmstart.baseline": "a boolean (null: on without a budget, off under one)",
    "axes.apply": "a boolean (false: the target trains at the tuned values carried over)",
    "hardware.precision": "an Enum: every precision runs on every device",
    "hardware.compile": "a boolean (null: on for CUDA)",
    "hardware.tf32": "a boolean",
    "hardware.data_parallel": "an Enum: OmegaConf refuses any other value at composition",
}


def validate(cfg: DictConfig) -> None:
    """Raise ValueError naming the field for anything that would fail later, before any job:
    every field alone first, then the fields together."""
    _check_ladder_chosen(cfg)
    for name, check in FIELD_CHECKS.items():
        if isinstance(check, Domain):
            check.check(name, OmegaConf.select(cfg, name))
    for check in dict.fromkeys(FIELD_CHECKS.values()):
        if not isinstance(check, Domain):
            check(cfg)
