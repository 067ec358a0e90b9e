"""The run's summary as types: what each stage writes into `summary.json`, and what the console
table, the report, the figures and the analysis scripts read back.

Each section is a TypedDict, so the summary stays plain JSON on disk while every writer and
reader names the same keys. LRs and weight decays given as `log2_*` are log2 units; a `regret`
is a fraction of the loss (0.01 is 1 %); per-width and per-rung maps are keyed by the width or
rung as a string (JSON keys). `mismatches` checks a value read from disk against these types.
"""

import types
from typing import NotRequired, TypedDict, Union, get_args, get_origin, get_type_hints
from typing import is_typeddict as _is_typeddict

Curve = list[list[float]]  # [[log2 LR (or step), loss], ...]


class VerdictRecord(TypedDict):
    status: str  # a sweep.core.verdict.Status
    text: str


class LadderSection(TypedDict):
    name: str
    widths: list[int]
    proxy: int
    target: int


class CoordVerdict(TypedDict):
    """A coordinate check's worst module: its slope of log mean |x| against log width."""

    worst_slope: float
    module: str
    step: int
    threshold: float
    passes: bool


class ModelCheck(CoordVerdict):
    widths: list[int]


class ModelSection(TypedDict):
    kind: str
    tunable: list[str]
    factory: NotRequired[str]  # a user's model: where it comes from and how it is built
    init: NotRequired[str]
    readout: NotRequired[str | None]
    check: NotRequired[ModelCheck]  # the pre-flight coordinate check


class SearchRange(TypedDict):
    low: float
    high: float
    log: bool


class NearBest(TypedDict):
    band: float
    trials: int
    ranges: dict[str, list[float]]  # per tuned value: [lowest, highest] among trials near best


class TuneSection(TypedDict):
    best_params: dict[str, float]
    at_bound: dict[str, str]  # value -> "low" or "high"
    widened: list[str]  # "name:side" for each bound widened
    search: dict[str, SearchRange]
    best_value: float
    n_trials: int
    n_complete: int
    n_pruned: int
    n_diverged: int
    n_failed: int
    near_best: NotRequired[NearBest | dict[str, float]]  # empty before a trial completes


class NoiseBand(TypedDict):
    """The seed noise a regret is judged against. Two LRs of one curve train at the same seeds,
    so the band is that of a paired difference (`paired`) once a neighbour of each best point has
    the noise seeds too; the unpaired band, that of two independent points, is kept beside it."""

    std: float  # seed-to-seed standard deviation of a final loss
    dof: int
    paired_std: float  # standard deviation of a same-seed difference between neighbouring LRs
    paired_dof: int
    correlation: float  # between the seeds' losses at neighbouring LRs, 1 − paired²/(2·std²)
    paired: bool  # the band below is the paired one
    band: float  # the loss difference two grid points must exceed to be told apart
    unpaired_band: float  # the same for two points of independent seeds
    seeds_per_point: int
    relative_band: float  # band ÷ the mean best loss
    relative_unpaired_band: float


class ParametrizationCurves(TypedDict):
    """One parametrization across the ladder, keyed by width."""

    curves: dict[str, Curve]
    optimum_log2_lr: dict[str, float]
    optimum_interval: dict[str, list[float]]
    bracketed: dict[str, bool]
    regret: dict[str, float]  # at the tuned LR, from every seed its two points share
    regret_band: dict[str, float]  # its noise band, relative to the best point's loss
    regret_seeds: dict[str, int]  # the seeds it rests on
    drift_log2: float
    drift_beyond_noise_log2: float
    worst_regret: float
    wider_is_better: bool


class ResolvedRegret(TypedDict):
    """A µP width whose regret interval straddled the tolerance: the seeds added at its tuned
    and best points, and how it ended: "settled" (the interval clears the tolerance), "budget"
    (`ladder.resolve_budget` spent first), "seeds" (the most seeds a point takes) or "diverged"
    (a seed added diverged at the tuned LR: its regret is +inf)."""

    regret: float
    band: float
    seeds: int
    added: int
    outcome: str


class TransferSection(TypedDict):
    tuned_log2_lr: float
    noise: NoiseBand
    mup: ParametrizationCurves
    sp: ParametrizationCurves
    tolerance: float
    conclusive: bool
    verdict: VerdictRecord
    runs: int
    flops_vs_target: float
    resolved: dict[str, ResolvedRegret]  # keyed by width
    resolve_flops_vs_target: float  # what the resolving seeds cost, in target runs


class HeldOut(TypedDict):
    """The longest horizon predicted by β fitted without it."""

    rung: float
    beta: float
    log2_lr: float
    regret_rule: float


class WeightDecayAxis(TypedDict):
    """Per rung: the λ optimum, and the regret of λ fixed against λ at the AdamW timescale."""

    curves: dict[str, Curve]
    optimum_log2_wd: dict[str, float]
    timescale_log2_wd: dict[str, float]
    regret_fixed: dict[str, float]
    regret_timescale: dict[str, float]


class WideHorizon(TypedDict):
    """The horizon rungs at a wider ladder width, keyed by rung: where the joint fit sees how
    the horizon's shift depends on width."""

    curves: dict[str, Curve]
    bracketed: dict[str, bool]
    optimum_log2_lr: dict[str, float]


class AxisSection(TypedDict):
    """One axis (training length or batch size) at the proxy width, keyed by rung."""

    rungs: list[float]
    beta: NotRequired[float]  # the horizon's exponent
    beta_from: NotRequired[str]
    kappa: NotRequired[float]  # the batch's exponent
    kappa_from: NotRequired[str]
    curves: dict[str, Curve]
    bracketed: dict[str, bool]
    regret_carry: dict[str, float]
    regret_rule: dict[str, float]
    optimum_log2_lr: dict[str, float]
    rule_log2_lr: dict[str, float]
    drift_without_rule: float
    drift_with_rule: float
    held_out: NotRequired[HeldOut]
    weight_decay: NotRequired[WeightDecayAxis]
    widths: NotRequired[dict[str, WideHorizon]]  # the horizon's rungs at wider widths
    dropped_for_budget: list[float]


class Prediction(TypedDict):
    """The target's LR and λ carried from the proxy by the axes' rules."""

    lr: float
    weight_decay: float
    log2_lr: float
    log2_shift_vs_carry: float
    beta: float
    kappa: float
    proxy_tokens: int
    target_tokens: int


class HeldOutFit(TypedDict):
    """The joint fit without the points furthest along an axis, against them."""

    at_log2: float  # where they lie on the axis (log2 ratio to the proxy)
    error_log2: float  # mean measured − predicted log2 LR


class ShiftPartSection(TypedDict):
    """One part of the shift to the target (width, the horizon, batch), in log2 LR."""

    fitted: float  # by the slopes as fitted, each term in width read at the widths measured
    stderr: float  # from the slopes' covariance
    shrunk: float  # fitted × max(0, 1 − (stderr/fitted)²): what the target's LR uses


class JointSection(TypedDict):
    """The LR optimum fitted over width, tokens and batch together (sweep.core.joint_fit)."""

    points: int
    slopes: dict[str, float]  # per fitted axis: d log2 η* / d log2 ratio
    stderr: dict[str, float]
    shifts: dict[str, ShiftPartSection]  # the shift to the target, part by part
    width_drift: bool  # the width slope lies beyond two standard errors of µP's zero
    log2_lr: float  # the target's: the tuned log2 LR + the shrunk parts' shift
    log2_shift_vs_carry: float
    log2_lr_unshrunk: float  # the target's by the slopes as fitted
    log2_lr_at_check: NotRequired[float]  # at the check's width and length (a rung, probes)
    held_out_width: NotRequired[HeldOutFit]
    held_out_tokens: NotRequired[HeldOutFit]


class AxesSection(TypedDict):
    horizon: NotRequired[AxisSection]
    batch: NotRequired[AxisSection]
    prediction: Prediction
    joint: NotRequired[JointSection]
    runs: int


class Schedule(TypedDict):
    lr: float
    schedule: str
    warmup_steps: int
    warmup_from: float


class TargetRun(TypedDict):
    final_val_loss: float
    status: str
    val_curve: Curve  # [[step, validation loss], ...]
    flops: int
    tokens_per_s: float
    mfu: float | None
    devices: int
    schedule: NotRequired[Schedule]


class Speedup(TypedDict):
    """Warm against cold: steps to the cold run's final loss, and the speedups (None where a
    run never gets there; `reason` says why)."""

    target_loss: float
    warm_steps: float | None
    cold_steps: float | None
    speedup: float | None
    speedup_with_source: float | None
    speedup_with_tuning: float | None
    reason: str | None


class Applied(TypedDict):
    """The values the target trains at and `tuned.yaml` hands on, beside the proxy's tuned
    ones carried over unchanged, and which rule moved them."""

    hparams: dict[str, float]
    carried: dict[str, float]
    log2_lr_shift: float  # applied − carried
    rule: str  # in words: what moved the LR and λ, or why nothing did


class TargetSection(TypedDict):
    width: int
    n_layer: int
    method: str
    source_width: int | None
    applied: Applied
    source_lr: NotRequired[float]  # the LR the warm start's source trained at
    source_note: NotRequired[str]  # where the source's LR is not the target's, what it costs
    warm: NotRequired[TargetRun]
    cold: NotRequired[TargetRun]
    pad_function_gap: NotRequired[float]
    source_from_transfer: NotRequired[bool]
    stages: NotRequired[list[int]]


class TargetComparison(TargetSection, Speedup):
    """The target section once both the warm and the cold run have trained."""


JUDGED = {  # the LRs the check at the target judges, by their key in VerifySection.judged
    "applied": "the applied LR",
    "carried": "the tuned LR carried over",
    "unshrunk": "the joint fit's unshrunk slopes",
    "one_axis": "the one-axis rules",
}


class JudgedLR(TypedDict):
    """One LR read off the target's own curve: its regret there and that regret's interval
    (± the paired noise band, floored at 0)."""

    log2_lr: float
    regret: float
    interval: list[float]


class VerifySection(TypedDict):
    check: str  # "full": whole target runs; "probes": short runs at the target's width
    steps: int  # of each run
    curve: Curve
    applied_log2_lr: float  # the LR the target trained at
    centre_log2_lr: float  # the grid's centre: the applied LR, moved to the probes' length
    optimum_log2_lr: float
    optimum_interval: list[float]
    bracketed: bool
    regret: float  # the applied LR's
    judged: dict[str, JudgedLR]  # "applied", "carried" and, where it differs, "predicted"
    runs: int
    flops_vs_target: float
    verdict: VerdictRecord
    # probes: their optimum moved back to the target's length by the horizon rule, and that rule
    target_optimum_log2_lr: NotRequired[float]
    target_optimum_interval: NotRequired[list[float]]
    rule: NotRequired[str]


class BudgetItem(TypedDict):
    stage: str
    what: str
    max_flops: float  # its worst case
    max_vs_target: float
    lost: NotRequired[str]  # a dropped item: what the verdict cannot say without it


class BudgetSection(TypedDict):
    """What the budget allotted before anything trained, and what the run then spent."""

    budget_vs_target: float  # everything besides the target's run, in target runs
    budget_flops: float
    max_flops: float  # the most the kept items may spend
    max_vs_target: float
    kept: list[BudgetItem]
    dropped: list[BudgetItem]
    check_steps: int  # of each run of the check at the target
    check_width: int  # the width it trains at: the target's, or a rung's
    spent_vs_target: float  # what the checks spent besides the target's run
    within: bool


class HardwareSection(TypedDict):
    device: str
    precision: str
    compile: bool
    data_parallel: str
    processes: int
    tune_tokens_per_s: float | None


class Sections(TypedDict):
    """The sections of the stages complete so far, and what each has spent: what a stage's
    summary is given of the stages before it."""

    ladder: LadderSection
    model: ModelSection
    tune: NotRequired[TuneSection]
    transfer: NotRequired[TransferSection]
    axes: NotRequired[AxesSection]
    target: NotRequired[TargetSection | TargetComparison]
    verify: NotRequired[VerifySection]
    coord_check: NotRequired[dict[str, CoordVerdict]]  # per parametrization
    cost: dict[str, float]  # FLOPs per stage, e.g. "tuning_flops"


class Summary(Sections):
    """`summary.json`: a stage's section appears once the stage is complete; then the run's
    verdict (once a check has one) and where the runs trained."""

    verdict: NotRequired[VerdictRecord]
    # each stage's FLOPs in target runs, "total", and "besides_target": all but the warm run
    cost_vs_target: dict[str, float]
    hardware: HardwareSection
    budget: NotRequired[BudgetSection]


def mismatches(value: object, hint: object, where: str = "summary") -> list[str]:
    """Where `value` (as read from JSON) departs from the type `hint`: a missing or unknown key,
    or a value of another type, one line each naming its path. An int passes for a float."""
    origin = get_origin(hint)
    if _is_typeddict(hint):
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, not an object"]
        fields = get_type_hints(hint)
        out = [f"{where}.{key}: missing" for key in sorted(hint.__required_keys__ - set(value))]
        out += [f"{where}.{key}: not in the schema" for key in value if key not in fields]
        for key, item in value.items():
            if key in fields:
                out += mismatches(item, fields[key], f"{where}.{key}")
        return out
    if origin in (Union, types.UnionType):
        arms = [mismatches(value, arm, where) for arm in get_args(hint)]
        return [] if any(not arm for arm in arms) else min(arms, key=len)
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: {type(value).__name__}, not a list"]
        (item_type,) = get_args(hint)
        return [
            line
            for i, item in enumerate(value)
            for line in mismatches(item, item_type, f"{where}[{i}]")
        ]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, not an object"]
        _, item_type = get_args(hint)
        return [line for k, v in value.items() for line in mismatches(v, item_type, f"{where}.{k}")]
    if hint is type(None):
        return [] if value is None else [f"{where}: {value!r}, not null"]
    if hint is float:
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if numeric else [f"{where}: {value!r}, not a number"]
    if isinstance(value, bool) and hint is int:
        return [f"{where}: {value!r}, not an integer"]
    if not isinstance(hint, type):
        raise TypeError(f"{where}: cannot check against {hint!r}")
    return [] if isinstance(value, hint) else [f"{where}: {value!r}, not {hint.__name__}"]
