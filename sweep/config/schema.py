"""The pipeline's configuration schema: structured (dataclass) configs for Hydra and the enums
of every choice, so a typo or a wrong type fails at composition."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum, auto
from typing import Any

from omegaconf import II, MISSING

from sweep.core.configs import DataConfig, GPTConfig, OptimConfig, RunConfig, Schedule, Source
from sweep.core.hardware import Device, Precision, Strategy
from sweep.grow.choices import Method, Sampling, SourceModel


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


class VerifyCheck(StrEnum):
    """How the target's LR is checked at the target's own width."""

    full = auto()  # the cold target at the applied LR's neighbours, each a whole target run
    rung = auto()  # whole target-length runs at a narrower width, carried to the target by µP
    probes = auto()  # short runs at the target's width, read through the fitted horizon rule


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
    # a µP width whose regret ± its band straddles the tolerance: more seeds at its tuned and
    # best points, round by round, costing at most this many target runs' FLOPs (0: none)
    resolve_budget: float = 0.25
    # the SP contrast's widths; null: every width (a budget keeps the cheapest that fit)
    sp_widths: list[int] | None = None
    # this ladder's default for `budget` (null: the full demonstration, no budget)
    budget: float | None = 0.1
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
    # rows of the embedding and the readout; None: the corpus's vocabulary, at least the 256
    # bytes (read once, before any job); a larger value pads it (a multiple of 64, say)
    vocab_size: int | None = None
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
    # the cold target beside the warm one (the warm start's baseline); null: on without a budget,
    # off under one (it is part of the warm-start claim, not of the run a user wants)
    baseline: bool | None = None


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
    # the MFU the plan assumes with peak_tflops, for a machine it cannot measure (a cluster's)
    mfu: float = 0.4
    data_parallel: Strategy = Strategy.ddp  # ddp, or fsdp for a model that fills a GPU


@dataclass
class VerifyConfig:
    """The check at the target: whole target runs at the applied LR × 2^±lr_resolution (and
    further out until the optimum is bracketed); runs of the target's length, depth and batch at
    a narrower width (a rung), µP carrying their optimum to the target's width; or short probes
    at the target's width around the LR the horizon rule gives their length (docs/methods.md
    §3, §12)."""

    max_runs: int = 3  # runs it may add beside the centre; fewer than 2 cannot bracket: skipped
    # null: full without a budget; under one, a rung at the widest width the budget fits, else
    # probes
    check: VerifyCheck | None = None
    # rung: its width; null: the widest ladder width the budget fits (without one, the widest)
    width: int | None = None
    # probes: each run's steps as a fraction of the target's; null: the largest the budget fits
    probe_fraction: float | None = None


@dataclass
class AxesConfig:
    """The transfer checks beside width, at the proxy width (docs/methods.md §11): each rung an
    LR grid (and a weight-decay grid when the tuned λ > 0), priced against `budget`."""

    horizon: list[float] = field(default_factory=lambda: [2.0, 4.0])  # × the proxy's tokens
    batch: list[float] = field(default_factory=list)  # × the proxy's batch, at its tokens
    beta: float | None = None  # η* ∝ tokens^-β; null: fitted on the horizon's rungs
    kappa: float = 0.5  # η* ∝ batch^κ: Adam's square-root rule
    weight_decay: bool = True  # a weight-decay grid at each rung's best LR (tuned λ > 0)
    # the horizon's rungs also at this many of the smallest ladder widths (1: the proxy only), so
    # the joint fit sees tokens and width vary together; wider rungs come after the proxy's
    widths: int = 2
    budget: float = 1.0  # the checks' worst case, in target runs' FLOPs; rungs past it dropped
    apply: bool = True  # the target trains at the joint fit's values; false: plain carry-over


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
    # everything spent besides the target's own (warm) run, as a fraction of that run's training
    # FLOPs: tuning, the transfer check, axes, the target check, the cold baseline; null: none
    budget: float | None = II("ladder.budget")
    out_root: str = "runs"
    run_name: str | None = None  # None: the ladder's name
    seed: int = 0
