"""The pipeline's configuration: structured (dataclass) schemas for Hydra, and their validation.

Every config group under `conf/` extends one of these schemas, so a typo or a wrong type fails at
composition. `validate` checks what types cannot (a ladder that does not grow, an empty LR grid,
a log-scaled bound that is not positive, a NaN, a run folder outside out_root, ...) before any
job is submitted, and names the field: `FIELD_CHECKS` maps every field to the check that covers
it, `EXEMPT` every field that any value of its type suits to the reason why.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum, auto
from pathlib import Path, PurePath
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from sweep.core import custom
from sweep.core.custom import CustomConfig, frozen_options
from sweep.core.data import BYTE_VOCAB, DataConfig, Source, check_corpus_fits, load_corpus
from sweep.core.hardware import Device, Execution, Precision, Strategy
from sweep.core.model import GPTConfig
from sweep.core.models import ModelConfig, source_digest
from sweep.core.train import OptimConfig, RunConfig, Schedule
from sweep.grow.rc_sampling import Sampling
from sweep.grow.warmstart import Method, SourceModel, source_config


class StageName(StrEnum):
    """The stages a config may list; each but `plan` is a stage of `sweep.stages.registry`."""

    plan = auto()  # print what the other listed stages (all, alone) would run, and stop
    tune = auto()
    transfer = auto()
    axes = auto()
    target = auto()
    verify = auto()
    report = auto()


RUN_STAGES = tuple(s for s in StageName if s != StageName.plan)


class Sampler(StrEnum):
    tpe = auto()
    random = auto()


class Pruner(StrEnum):
    median = auto()
    hyperband = auto()
    none = auto()


class LauncherKind(StrEnum):
    local = auto()  # Submitit subprocesses on this machine
    debug = auto()  # in this process, one job at a time
    slurm = auto()


class LoggerKind(StrEnum):
    wandb = auto()
    none = auto()


class WandbMode(StrEnum):
    offline = auto()
    online = auto()
    disabled = auto()


class ModelKind(StrEnum):
    gpt = auto()  # the built-in GPT (sweep.core.model)
    custom = auto()  # a user's model, built by model.factory (sweep.core.custom)


class InitKind(StrEnum):
    mup = auto()  # the tool draws every matrix by its µP role, with the tuned init scales
    own = auto()  # the factory's init is kept (mup's rescaling of its readout applies)


TUNABLE = ("lr", "init_std", "output_std", "alpha_in", "alpha_out", "alpha_attn", "weight_decay")
MODEL_HPARAMS = ("init_std", "output_std", "alpha_in", "alpha_out", "alpha_attn")


@dataclass
class ParamRange:
    low: float = MISSING
    high: float = MISSING
    log: bool = True  # sample log-uniformly (bounds must then be > 0)


@dataclass
class HyperParams:
    """The values of every tunable hyperparameter that the search space leaves fixed."""

    lr: float = OptimConfig.lr
    init_std: float = GPTConfig.init_std
    output_std: float = GPTConfig.output_std
    alpha_in: float = GPTConfig.alpha_in
    alpha_out: float = GPTConfig.alpha_out
    alpha_attn: float = GPTConfig.alpha_attn
    weight_decay: float = OptimConfig.weight_decay


@dataclass
class LadderConfig:
    name: str = MISSING
    widths: list[int] = MISSING  # proxy (the µP base) first, then the intermediate widths
    target: int = MISSING  # the width the tuned values are carried to
    n_layer: int = GPTConfig.n_layer  # depth of the proxy and every ladder width
    target_n_layer: int | None = None  # depth of the target (null: n_layer)
    # CompleteP (docs/methods.md §1): a model L deep has residual branches × (base_n_layer / L)^α
    # and hidden LR × (L / base_n_layer)^(α-1), so HPs tuned at base_n_layer carry to any depth
    base_n_layer: int | None = None  # null: n_layer, the depth the HPs are tuned at
    depth_alpha: float = GPTConfig.depth_alpha  # in [0.5, 1]
    d_head: int = GPTConfig.d_head  # head size; widths grow the number of heads
    mlp_ratio: float = GPTConfig.mlp_ratio
    seq_len: int = GPTConfig.seq_len
    batch_size: int = RunConfig.batch_size
    tune_steps: int = 150  # steps of one tuning trial (at the proxy width)
    transfer_steps: int = 150  # steps of one transfer-check point (every width)
    target_steps: int = 300  # steps of the warm and cold target runs
    eval_every: int = RunConfig.eval_every
    eval_batches: int = RunConfig.eval_batches
    warmup_steps: int = OptimConfig.warmup_steps
    schedule: Schedule = Schedule[OptimConfig.schedule]
    decay_fraction: float = OptimConfig.decay_fraction  # schedule=wsd: the decaying share
    # The transfer and verify checks' LR grids: centred on the tuned LR, lr_resolution apart in
    # log2, lr_span points each side to start with, grown on the side where the best point sits
    # at the edge until the optimum is bracketed or a width holds lr_max_points points.
    lr_resolution: float = 1.0
    lr_span: int = 1
    lr_max_points: int = 8
    transfer_seeds: int = 1  # seeds at every point of the transfer check
    noise_seeds: int = 1  # more seeds at each width's best LR: the seed-to-seed noise (0: none)
    regret_tolerance: float = 0.005  # the relative regret µP may show at any width
    hparams: HyperParams = field(default_factory=HyperParams)
    search: dict[str, ParamRange] = field(default_factory=dict)


@dataclass
class ModelSection:
    """Which model the ladder is built of. The built-in GPT takes its shapes from the ladder
    (d_head, mlp_ratio); a custom model is `factory(width, depth, vocab_size, seq_len,
    **options)`, made µP from the shapes `mup` infers (docs/methods.md §10)."""

    kind: ModelKind = ModelKind.gpt
    factory: str | None = None  # "package.module:function" or "path/to/file.py:function"
    options: dict[str, Any] = field(default_factory=dict)  # more keyword arguments for it
    readout: str | None = None  # the module giving the logits, when it is no mup.MuReadout
    embeddings: list[str] = field(default_factory=list)  # input modules; []: every nn.Embedding
    init: InitKind = InitKind.mup


@dataclass
class DataSection:
    """Schema of `sweep.core.data.DataConfig` (frozen there, so it is hashable for the corpus
    cache); the defaults are that class's."""

    source: Source = Source[DataConfig.source]
    path: str | None = DataConfig.path  # a text file, or a uint16 token file or folder
    val_fraction: float = DataConfig.val_fraction
    vocab_size: int | None = DataConfig.vocab_size
    cache_dir: str | None = DataConfig.cache_dir


@dataclass
class TuneConfig:
    n_trials: int = 20
    sampler: Sampler = Sampler.tpe
    n_startup_trials: int = 5  # random trials before TPE models the space
    pruner: Pruner = Pruner.median
    # None: SQLite in the run folder; "journal": a journal file there (workers on one host); or
    # any SQLAlchemy URL, e.g. postgresql+psycopg://user:password@host/db (workers across hosts)
    storage: str | None = None
    workers: int = 1  # parallel workers on the one study (a job array on SLURM)
    study_name: str | None = None  # None: the run name
    seed: int | None = None  # the sampler's seed; None: the experiment's seed
    # a tuned value at a bound of its range widens that range (×4, log-scaled: ×4 beyond it) and
    # the study runs this many more trials over it, once per bound; 0: only flag it
    widen_trials: int = 10
    # SQL storage only: a worker silent for `grace_s` is presumed dead; its trial is retried
    heartbeat_s: int = 30
    grace_s: int = 120


@dataclass
class LauncherConfig:
    kind: LauncherKind = LauncherKind.local
    max_parallel: int = 2  # jobs at once (SLURM: the job array's parallelism; GPUs: one each)
    timeout_min: int = 60
    cpus_per_task: int = 1
    # GPUs of a node: a trial or transfer point takes one, a data-parallel run (target, source,
    # verify) all of them; 0 here with GPUs visible to the local launcher: all of those
    gpus_per_node: int = 0
    nodes: int = 1  # nodes of a data-parallel run (SLURM)
    tasks_per_node: int | None = None  # processes of a data-parallel run per node; null: GPUs, or 1
    # SLURM only; null leaves the cluster's default
    partition: str | None = None
    mem_gb: float | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    setup: list[str] = field(default_factory=list)  # shell lines run before each job
    additional: dict[str, str] = field(default_factory=dict)  # any other sbatch option


@dataclass
class LoggerConfig:
    """W&B; a null field takes WANDB_PROJECT / WANDB_ENTITY / WANDB_MODE / WANDB_DIR from the
    environment, else project "musweep", offline, inside the run folder."""

    kind: LoggerKind = LoggerKind.wandb
    project: str | None = None
    entity: str | None = None
    mode: WandbMode | None = None  # "online" once the user has logged in
    dir: str | None = None


@dataclass
class WarmstartConfig:
    method: Method = Method.shrink_pad_perturb  # or cold: a fresh init, no warm start
    # the model grown: the widest ladder width, the proxy, or any ladder width; the transfer
    # check's run of that width at the tuned values is reused when their runs are the same
    source: str = SourceModel.widest
    stages: list[int] = field(default_factory=list)  # progressive: widths grown through first
    stage_steps: int = 50  # what each of those widths trains before the next growth
    warmup: int | None = None  # the warm run's warmup from its source's final LR; null: ladder's
    peak: float = 1.0  # the warm run's peak LR, a multiple of the tuned LR
    shrink: float = 0.8  # λ (docs/methods.md §4)
    perturb: float = 0.3  # σ: scale of the fresh µP init noise added
    sampling: Sampling = Sampling.stratified  # rc_sampling: each unit N/n times, or iid (§6)
    noise: float = 0.0  # rc_sampling: symmetric noise, in units of the target's µP init std
    stack_factor: int = 2  # stack: the source has n_layer / stack_factor blocks


@dataclass
class HardwareConfig:
    """Where every run trains (tune trials, transfer points, source, targets, verify, coordinate
    check) and how; none of it changes what a run computes except `precision`."""

    device: Device = Device.auto  # auto: CUDA when the jobs will see a GPU
    precision: Precision = Precision.auto  # auto: bf16 autocast on CUDA, fp32 on the CPU
    compile: bool | None = None  # torch.compile; null: on for CUDA
    micro_batch_size: int | None = None  # rows per forward/backward (gradient accumulation)
    sync_every: int | None = None  # read losses back every k steps; null: 1 on CPU, 16 on CUDA
    tf32: bool = True  # TF32 matmuls for the float32 parts on CUDA
    peak_tflops: float | None = None  # one device's peak, for MFU; null: the table's
    data_parallel: Strategy = Strategy.ddp  # ddp, or fsdp for a model that fills a GPU


@dataclass
class VerifyConfig:
    """The direct check at the target: the cold target trained at the tuned LR × 2^±lr_resolution
    (and further out until the optimum is bracketed), beside the target stage's cold run."""

    max_runs: int = 3  # target-size runs it may add; fewer than 2 cannot bracket: then skipped


@dataclass
class AxesConfig:
    """The transfer checks beside width, at the proxy width (docs/methods.md §11): each rung an
    LR grid (and a weight-decay grid when the tuned λ > 0), priced against `budget`."""

    horizon: list[float] = field(default_factory=lambda: [2.0, 4.0])  # × the proxy's tokens
    batch: list[float] = field(default_factory=list)  # × the proxy's batch, at its tokens
    beta: float | None = None  # η* ∝ tokens^-β; null: fitted on the horizon's rungs
    kappa: float = 0.5  # η* ∝ batch^κ: Adam's square-root rule
    weight_decay: bool = True  # a weight-decay grid at each rung's best LR (tuned λ > 0)
    budget: float = 1.0  # the checks' worst case, in target runs' FLOPs; rungs past it dropped


@dataclass
class PipelineConfig:
    ladder: LadderConfig = MISSING
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    tune: TuneConfig = field(default_factory=TuneConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    warmstart: WarmstartConfig = field(default_factory=WarmstartConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    axes: AxesConfig = field(default_factory=AxesConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    stages: list[StageName] = field(default_factory=lambda: list(RUN_STAGES))
    out_root: str = "runs"
    run_name: str | None = None  # None: the ladder's name
    seed: int = 0


def register_configs() -> None:
    OmegaConf.register_new_resolver("musweep_help", help_text, replace=True)
    cs = ConfigStore.instance()
    cs.store(name="pipeline_schema", node=PipelineConfig)
    for group, node in (
        ("ladder", LadderConfig),
        ("model", ModelSection),
        ("data", DataSection),
        ("tune", TuneConfig),
        ("launcher", LauncherConfig),
        ("logger", LoggerConfig),
        ("warmstart", WarmstartConfig),
    ):
        cs.store(group=group, name=f"{group}_schema", node=node)


def compose_config(*overrides: str) -> DictConfig:
    """The pipeline's config from `conf/` and Hydra overrides, as `python -m sweep.run` composes
    it (for tests and analysis scripts, which call the pipeline without the command line)."""
    register_configs()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def plain(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain data (choices as their strings): what jobs receive and files record."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@]*@")


def public_url(url: str) -> str:
    """A URL with its password masked (user:***@host)."""
    return _PASSWORD_IN_URL.sub(r"\1***@", url)


def public(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain data with the password of a storage URL masked: what W&B runs, the
    study's attributes and the run folder's `config.yaml` record."""
    container = plain(cfg)
    storage = container["tune"].get("storage")
    if storage:
        container["tune"]["storage"] = public_url(storage)
    return container


EXPERIMENT_SCHEMAS = {
    "ladder": LadderConfig,
    "model": ModelSection,
    "data": DataSection,
    "warmstart": WarmstartConfig,
}
ADDED_SECTIONS = ("model",)  # sections a record of an earlier version may lack: then defaults


def with_defaults(experiment: dict) -> dict:
    """An experiment record (ladder, data, seed, warm start) with every field its schema has
    gained since the record was written set to its default: a run folder of an earlier version
    stays usable as long as nothing its results depend on has changed."""
    out = dict(experiment)
    for key, schema in EXPERIMENT_SCHEMAS.items():
        if key not in out and key in ADDED_SECTIONS:
            out[key] = {}
        if key in out:
            merged = OmegaConf.merge(OmegaConf.structured(schema), out[key])
            out[key] = OmegaConf.to_container(merged, enum_to_str=True)
    return out


def choices(group: str) -> list[str]:
    """The options of a config group, as `group=option` takes them."""
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def help_text() -> str:
    """`--help`: what a user can pick, then Hydra's own flags and the composed config."""
    groups = "\n".join(
        f"  {group + ':':<11}{', '.join(choices(group))}"
        for group in sorted(p.name for p in config_dir().iterdir() if p.is_dir())
    )
    return f"""musweep: tune a language model's hyperparameters on a µP proxy with Optuna, check
that they transfer across widths (µP against SP) and at the target, and train the target
warm-started. The model is the built-in GPT or yours (model=custom model.factory=...).

  python -m sweep.run +ladder=NAME [group=option ...] [key=value ...]
  musweep +ladder=NAME ...                      (the same command)
  musweep -m +ladder=NAME seed=0,1              (one run folder per job)
  musweep +ladder=NAME model=custom model.factory=path/to/model.py:build

Config groups (group=option; +ladder= is required):
{groups}
Stages (stages=[...], in this order): {", ".join(RUN_STAGES)}; stages=[plan] prints what
they would run (jobs, FLOPs, time) and stops
Every other key (hardware.*, verify.*, tune.*, launcher.*, out_root, run_name, seed) is
listed below with its value; `--cfg job` prints the composed config alone.

== Flags ==
$FLAGS_HELP
== Config ==
$CONFIG"""


def config_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "conf"


def available_ladders() -> list[str]:
    return choices("ladder")


def cuda_devices() -> int:
    """GPUs this process sees (the local and debug launchers' jobs see the same)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_hardware(cfg: DictConfig, visible_gpus: int) -> None:
    """Replace every `auto` and null of `hardware` and the launcher's GPU and task counts by what
    the jobs will use, so that every job of the run trains the same way (validated first)."""
    hw, launcher = cfg.hardware, cfg.launcher
    slurm = launcher.kind == LauncherKind.slurm
    if hw.device == Device.auto:
        gpus = launcher.gpus_per_node if slurm else visible_gpus
        hw.device = Device.cuda if gpus > 0 else Device.cpu
    cuda = hw.device == Device.cuda
    if cuda and not slurm and launcher.gpus_per_node == 0:
        launcher.gpus_per_node = visible_gpus
    if hw.precision == Precision.auto:
        hw.precision = Precision.bf16 if cuda else Precision.fp32
    if hw.compile is None:
        hw.compile = cuda
    if hw.sync_every is None:
        hw.sync_every = 16 if cuda else 1
    if launcher.tasks_per_node is None:
        launcher.tasks_per_node = launcher.gpus_per_node if cuda else 1


def world_size(cfg: DictConfig) -> int:
    """Processes of a data-parallel run (after `resolve_hardware`)."""
    return cfg.launcher.nodes * cfg.launcher.tasks_per_node


def check_slurm_present(cfg: DictConfig) -> None:
    """`launcher=slurm` needs SLURM's commands on this machine (checked when the pipeline
    starts, not in `validate`: a config may be composed and checked anywhere)."""
    if cfg.launcher.kind != LauncherKind.slurm:
        return
    missing = [c for c in ("sbatch", "squeue", "scancel", "sinfo") if shutil.which(c) is None]
    if missing:
        raise ValueError(
            f"launcher=slurm but this machine has no SLURM commands ({', '.join(missing)} not "
            "on PATH): run on a cluster's login node, or use launcher=local"
        )


def check_hardware(cfg: DictConfig, visible_gpus: int | None = None) -> None:
    """Device, precision and process counts that cannot work, named before any job starts."""
    hw, launcher = cfg.hardware, cfg.launcher
    visible = cuda_devices() if visible_gpus is None else visible_gpus
    slurm, debug = launcher.kind == LauncherKind.slurm, launcher.kind == LauncherKind.debug
    for section, name in (
        ("hardware", "micro_batch_size"),
        ("hardware", "sync_every"),
        ("hardware", "peak_tflops"),
        ("launcher", "tasks_per_node"),
    ):
        value = cfg[section][name]
        if value is not None and not 0 < value < math.inf:
            raise ValueError(f"{section}.{name} must be positive (or null); got {value}")
    if launcher.gpus_per_node < 0:
        raise ValueError(f"launcher.gpus_per_node must be >= 0; got {launcher.gpus_per_node}")
    if launcher.nodes < 1:
        raise ValueError(f"launcher.nodes must be >= 1; got {launcher.nodes}")
    if hw.device == Device.cpu and launcher.gpus_per_node > 0:
        raise ValueError(
            f"launcher.gpus_per_node={launcher.gpus_per_node} reserves GPUs that "
            "hardware.device=cpu leaves idle: use hardware.device=auto or cuda, or no GPUs"
        )
    if hw.device == Device.cuda and slurm and launcher.gpus_per_node == 0:
        raise ValueError("hardware.device=cuda on SLURM needs launcher.gpus_per_node > 0")
    if hw.device == Device.cuda and not slurm and visible == 0:
        raise ValueError("hardware.device=cuda but this machine has no GPU that torch can see")
    if not slurm and launcher.gpus_per_node > visible:
        raise ValueError(
            f"launcher.gpus_per_node={launcher.gpus_per_node} but this machine has {visible}"
        )
    if not slurm and launcher.nodes > 1:
        raise ValueError(f"launcher.nodes={launcher.nodes} needs launcher=slurm")
    probe = cfg.copy()
    resolve_hardware(probe, visible)
    tasks = probe.launcher.tasks_per_node
    if debug and tasks > 1:
        raise ValueError(
            f"launcher=debug runs one process; launcher.tasks_per_node={tasks} needs "
            "launcher=local or slurm"
        )
    gpus = probe.launcher.gpus_per_node
    if probe.hardware.device == Device.cuda and tasks > gpus:
        raise ValueError(
            f"launcher.tasks_per_node={tasks} processes would share {gpus} GPUs: one per GPU"
        )
    batch, world = cfg.ladder.batch_size, world_size(probe)
    if batch % world:
        raise ValueError(
            f"ladder.batch_size ({batch}) must split evenly over the {world} processes of a "
            "data-parallel run (launcher.nodes × launcher.tasks_per_node)"
        )
    micro = hw.micro_batch_size
    if micro is not None and (batch // world) % micro:
        raise ValueError(
            f"hardware.micro_batch_size ({micro}) must divide each process's rows of the batch "
            f"({batch // world} in a data-parallel run)"
        )
    if micro is not None and batch % micro:
        raise ValueError(f"hardware.micro_batch_size ({micro}) must divide ladder.batch_size")


def execution(cfg: DictConfig) -> Execution:
    """How this job's process trains: the driver resolved the config for every job; a config
    that is not resolved yet (a script calling a stage directly) resolves with this process's
    GPUs."""
    hw = cfg.hardware
    if Device.auto in (hw.device, hw.precision) or None in (hw.compile, hw.sync_every):
        cfg = copy.deepcopy(cfg)
        resolve_hardware(cfg, cuda_devices())
    hw = cfg.hardware
    return Execution(
        device=str(hw.device),
        precision=str(hw.precision),
        compile=bool(hw.compile),
        micro_batch_size=hw.micro_batch_size,
        sync_every=hw.sync_every,
        tf32=hw.tf32,
        peak_flops=None if hw.peak_tflops is None else hw.peak_tflops * 1e12,
    )


def check_warmstart(cfg: DictConfig) -> None:
    """A warm start whose source can be built and grown into the target (the values of
    shrink, perturb and noise alone are `validate`'s domains)."""
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


def data_config(cfg: DictConfig) -> DataConfig:
    return DataConfig(**plain(cfg.data))


def source_width(cfg: DictConfig) -> int:
    """The width of the model the warm start grows: `warmstart.source` read as a ladder width."""
    source, widths = str(cfg.warmstart.source), list(cfg.ladder.widths)
    if source == SourceModel.widest:
        return widths[-1]
    if source == SourceModel.proxy:
        return widths[0]
    return int(source)


def target_depth(cfg: DictConfig) -> int:
    ladder = cfg.ladder
    return ladder.n_layer if ladder.target_n_layer is None else ladder.target_n_layer


def model_config(
    cfg: DictConfig, width: int, parametrization: str, hparams: dict, n_layer: int | None = None
) -> ModelConfig:
    """The ladder's model at `width` (and `n_layer`, default the ladder's depth), with the
    corpus's vocabulary (at least the 256 bytes)."""
    ladder = cfg.ladder
    vocab = max(BYTE_VOCAB, load_corpus(data_config(cfg)).vocab_size)
    depth = ladder.n_layer if n_layer is None else n_layer
    base = ladder.n_layer if ladder.base_n_layer is None else ladder.base_n_layer
    if cfg.model.kind == ModelKind.custom:
        model = cfg.model
        if not model.factory:
            raise ValueError(
                "model.factory: model=custom needs the function that builds the model, e.g. "
                "model.factory=my_package.model:build or model.factory=path/to/model.py:build"
            )
        return CustomConfig(
            factory=model.factory,
            vocab_size=vocab,
            seq_len=ladder.seq_len,
            n_layer=depth,
            d_model=width,
            parametrization=parametrization,
            base_d_model=ladder.widths[0],
            base_n_layer=None if base == depth else base,
            depth_alpha=ladder.depth_alpha,
            init=str(model.init),
            readout=model.readout,
            embeddings=tuple(model.embeddings),
            options=frozen_options(OmegaConf.to_container(model.options)),
            **{name: float(hparams[name]) for name in MODEL_HPARAMS},
        )
    return GPTConfig(
        vocab_size=vocab,
        seq_len=ladder.seq_len,
        n_layer=depth,
        d_model=width,
        d_head=ladder.d_head,
        mlp_ratio=ladder.mlp_ratio,
        parametrization=parametrization,
        base_d_model=ladder.widths[0],
        base_n_layer=None if base == depth else base,  # one config per model: None = own depth
        depth_alpha=ladder.depth_alpha,
        **{name: float(hparams[name]) for name in MODEL_HPARAMS},
    )


def run_config(
    cfg: DictConfig,
    width: int,
    parametrization: str,
    hparams: dict,
    steps: int,
    seed: int,
    n_layer: int | None = None,
) -> RunConfig:
    """The training run of one job: the ladder's shapes and schedule, these HPs and steps."""
    ladder = cfg.ladder
    optim = OptimConfig(
        lr=float(hparams["lr"]),
        weight_decay=float(hparams["weight_decay"]),
        warmup_steps=ladder.warmup_steps,
        schedule=str(ladder.schedule),
        decay_fraction=float(ladder.decay_fraction),
    )
    return RunConfig(
        model=model_config(cfg, width, parametrization, hparams, n_layer),
        optim=optim,
        steps=steps,
        batch_size=ladder.batch_size,
        seed=seed,
        eval_every=ladder.eval_every,
        eval_batches=ladder.eval_batches,
    )


# --- validation -------------------------------------------------------------------------------
#
# Every leaf field of `PipelineConfig` is either in FIELD_CHECKS (the check that refuses its bad
# values) or in EXEMPT (why any value is fine); tests/test_fields.py walks the schema to keep it
# so. A `Domain` judges one field alone; a function judges fields together (or against the
# disk) and may cover several of them. `validate` runs every check.


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


def _writable_folder(name: str, folder: Path) -> None:
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
    _writable_folder("out_root", Path(cfg.out_root))
    if cfg.data.cache_dir:
        _writable_folder("data.cache_dir", Path(cfg.data.cache_dir).expanduser())
    if cfg.logger.dir:
        _writable_folder("logger.dir", Path(cfg.logger.dir))


def _check_ladder_shape(cfg: DictConfig) -> None:
    """Widths that grow to the target, and a model that can be built at each of them."""
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


def tunable(cfg: DictConfig) -> tuple[str, ...]:
    """The HPs that change the ladder's model: all of TUNABLE for the GPT; for a custom model
    the multipliers its factory takes or the tool applies, the init scales under init=mup."""
    if cfg.model.kind != ModelKind.custom:
        return TUNABLE
    model = model_config(cfg, cfg.ladder.widths[0], "mup", dict(cfg.ladder.hparams))
    changes = custom.tunable(model) | {"lr", "weight_decay"}
    return tuple(name for name in TUNABLE if name in changes)


def model_source(cfg: DictConfig) -> str:
    """A hash of the ladder's model's source file ('' for the built-in GPT)."""
    return source_digest(model_config(cfg, cfg.ladder.widths[0], "mup", dict(cfg.ladder.hparams)))


def unused_search(cfg: DictConfig) -> list[str]:
    """Search ranges of HPs that do not change this model (the search leaves them out)."""
    return [name for name in cfg.ladder.search if name not in tunable(cfg)]


def _check_model(cfg: DictConfig) -> None:
    """A custom model that imports, builds at the base width, maps token ids to logits of the
    vocabulary, has width dimensions, an identifiable readout, and CompleteP's keyword when its
    depth changes (its µP itself is judged by the coordinate check before the first stage)."""
    if cfg.model.kind != ModelKind.custom:
        for name in ("factory", "readout"):
            if cfg.model[name] is not None:
                raise ValueError(f"model.{name} applies to model=custom only")
        return
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
    """The data exist, are what their source says, and are long enough for one window."""
    check_corpus_fits(load_corpus(data_config(cfg)), cfg.ladder.seq_len)


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
    "axes.budget": at_least(0),
    "data.source": _check_corpus,
    "data.path": _check_corpus,
    "data.val_fraction": _check_corpus,
    "data.vocab_size": _check_corpus,
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
