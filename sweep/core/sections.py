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
    text: str  # the verdict in one line


class LadderSection(TypedDict):
    name: str  # the ladder's name (conf/ladder/<name>.yaml)
    widths: list[int]  # the ladder's widths, the proxy (the µP base) first
    proxy: int  # the width tuned at
    target: int  # the width the values are carried to


class CoordVerdict(TypedDict):
    """A coordinate check's worst module: its slope of log mean |x| against log width."""

    worst_slope: float  # the largest slope of log mean |x| against log width
    module: str  # where it is
    step: int  # after how many updates
    threshold: float  # the slope refused above
    passes: bool  # worst_slope ≤ threshold


class ModelCheck(CoordVerdict):
    widths: list[int]  # the widths the check built


class ModelSection(TypedDict):
    kind: str  # gpt (musweep's) or custom (a factory's)
    tunable: list[str]  # the HPs the search could change in this model
    factory: NotRequired[str]  # a user's model: where it comes from and how it is built
    init: NotRequired[str]  # mup (the tool draws the init) or own (the factory's)
    readout: NotRequired[str | None]  # the module giving the logits, where named
    check: NotRequired[ModelCheck]  # the pre-flight coordinate check


class SearchRange(TypedDict):
    low: float  # the range's bound, in the HP's own units
    high: float
    log: bool  # sampled on a log scale


class NearBest(TypedDict):
    band: float  # the loss band counted as near the best (the seed noise)
    trials: int  # complete trials within it
    ranges: dict[str, list[float]]  # per tuned value: [lowest, highest] among trials near best


class TuneSection(TypedDict):
    best_params: dict[str, float]  # the best trial's values (LR in its own units, not log2)
    at_bound: dict[str, str]  # value -> "low" or "high"
    widened: list[str]  # "name:side" for each bound widened
    search: dict[str, SearchRange]  # the ranges searched, widened bounds included
    best_value: float  # the best trial's final validation loss
    n_trials: int  # complete and pruned trials
    n_complete: int  # trials that trained to their end
    n_pruned: int  # stopped early by the pruner
    n_diverged: int  # ended as diverged (NaN, a blow-up, or above the untrained loss)
    n_failed: int  # trials whose job failed
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

    curves: dict[str, Curve]  # per width: [[log2 LR, final validation loss], ...]
    optimum_log2_lr: dict[str, float]  # per width: the fitted optimum
    # per width: [lo, hi] log2 LRs within the noise band of the best
    optimum_interval: dict[str, list[float]]
    bracketed: dict[str, bool]  # per width: the grid holds points on both sides of its best
    regret: dict[str, float]  # at the tuned LR, from every seed its two points share
    regret_band: dict[str, float]  # its noise band, relative to the best point's loss
    regret_seeds: dict[str, int]  # the seeds it rests on
    drift_log2: float  # max − min of the widths' optima
    drift_beyond_noise_log2: float  # the least drift their intervals allow (0: one LR lies in all)
    worst_regret: float  # the largest of `regret`
    wider_is_better: bool  # at every LR up to the tuned one, a wider model is no worse


class ResolvedRegret(TypedDict):
    """A µP width whose regret interval straddled the tolerance: the seeds added at its tuned
    and best points, and how it ended: "settled" (the interval clears the tolerance), "budget"
    (`ladder.resolve_budget` spent first), "seeds" (the most seeds a point takes) or "diverged"
    (a seed added diverged at the tuned LR: its regret is +inf)."""

    regret: float  # the regret with every seed added
    band: float  # its noise band
    seeds: int  # seeds it rests on
    added: int  # seeds added
    outcome: str  # settled, budget, seeds or diverged


class TransferSection(TypedDict):
    tuned_log2_lr: float  # the tuned LR the grids are centred on
    noise: NoiseBand
    mup: ParametrizationCurves
    sp: ParametrizationCurves
    tolerance: float  # the regret µP may show at any width (ladder.regret_tolerance)
    conclusive: bool  # every series bracketed
    verdict: VerdictRecord
    runs: int  # transfer runs trained
    flops_vs_target: float  # what the check cost, in target runs
    resolved: dict[str, ResolvedRegret]  # keyed by width
    resolve_flops_vs_target: float  # what the resolving seeds cost, in target runs


class HeldOut(TypedDict):
    """The longest horizon predicted by β fitted without it."""

    rung: float  # the longest horizon rung (× the proxy's tokens)
    beta: float  # β fitted on the other rungs
    log2_lr: float  # the LR that β predicts there
    regret_rule: float  # that LR's regret on the rung's curve


class WeightDecayAxis(TypedDict):
    """Per rung: the λ optimum, and the regret of λ fixed against λ at the AdamW timescale."""

    curves: dict[str, Curve]  # per rung: [[log2 λ, loss], ...] at the rung's best LR
    optimum_log2_wd: dict[str, float]  # per rung: the fitted λ optimum
    timescale_log2_wd: dict[str, float]  # per rung: the λ that keeps the proxy's AdamW timescale
    regret_fixed: dict[str, float]  # per rung: the regret of the tuned λ held fixed
    regret_timescale: dict[str, float]  # per rung: the regret of λ at the timescale


class WideHorizon(TypedDict):
    """The horizon rungs at a wider ladder width, keyed by rung: where the joint fit sees how
    the horizon's shift depends on width."""

    curves: dict[str, Curve]  # per rung: [[log2 LR, loss], ...]
    bracketed: dict[str, bool]
    optimum_log2_lr: dict[str, float]  # per rung: the fitted optimum


class AxisSection(TypedDict):
    """One axis (training length or batch size) at the proxy width, keyed by rung."""

    rungs: list[float]  # multiples of the proxy's tokens (horizon) or batch (batch), 1 the proxy
    beta: NotRequired[float]  # the horizon's exponent
    beta_from: NotRequired[str]  # given, or fitted on how many rungs (± its error)
    kappa: NotRequired[float]  # the batch's exponent
    kappa_from: NotRequired[str]  # given, or fitted
    curves: dict[str, Curve]  # per rung: [[log2 LR, loss], ...]
    bracketed: dict[str, bool]  # per rung
    regret_carry: dict[str, float]  # per rung: the regret of the tuned LR carried unchanged
    regret_rule: dict[str, float]  # per rung: the regret of the rule's LR
    optimum_log2_lr: dict[str, float]  # per rung: the fitted optimum
    rule_log2_lr: dict[str, float]  # per rung: the LR the rule gives
    drift_without_rule: float  # log2: max − min of the rungs' optima
    drift_with_rule: float  # log2: the same once the rule's shift is taken off
    held_out: NotRequired[HeldOut]  # the longest rung predicted by β fitted without it
    weight_decay: NotRequired[WeightDecayAxis]  # the λ grids, where the tuned λ > 0
    widths: NotRequired[dict[str, WideHorizon]]  # the horizon's rungs at wider widths
    dropped_for_budget: list[float]  # rungs asked for and left out by axes.budget


class Prediction(TypedDict):
    """The target's LR and λ carried from the proxy by the axes' rules."""

    lr: float  # the target's LR by the one-axis rules
    weight_decay: float  # the target's λ by the timescale rule
    log2_lr: float
    log2_shift_vs_carry: float  # log2 LR above the tuned one
    beta: float  # the horizon's exponent used
    kappa: float  # the batch's exponent used
    proxy_tokens: int  # tokens the proxy's tuning run trains
    target_tokens: int  # tokens the target trains


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

    points: int  # optima the fit rests on
    slopes: dict[str, float]  # per fitted axis: d log2 η* / d log2 ratio
    stderr: dict[str, float]  # per slope
    shifts: dict[str, ShiftPartSection]  # the shift to the target, part by part
    width_drift: bool  # the width slope lies beyond two standard errors of µP's zero
    log2_lr: float  # the target's: the tuned log2 LR + the shrunk parts' shift
    log2_shift_vs_carry: float  # log2 LR the target's lies above the tuned one
    log2_lr_unshrunk: float  # the target's by the slopes as fitted
    log2_lr_at_check: NotRequired[float]  # at the check's width and length (a rung, probes)
    held_out_width: NotRequired[HeldOutFit]
    held_out_tokens: NotRequired[HeldOutFit]


class AxesSection(TypedDict):
    horizon: NotRequired[AxisSection]  # training length
    batch: NotRequired[AxisSection]  # batch size at the same tokens
    prediction: Prediction  # the one-axis rules' prediction for the target
    joint: NotRequired[JointSection]  # the joint fit, where an optimum was measured
    runs: int  # runs the axes trained


class Schedule(TypedDict):
    lr: float  # the run's peak LR
    schedule: str  # constant, cosine or wsd
    warmup_steps: int
    warmup_from: float  # the LR factor warmup rises from (a warm start: its source's last)


class TargetRun(TypedDict):
    final_val_loss: float  # its last validation loss
    status: str  # completed, diverged or stopped
    val_curve: Curve  # [[step, validation loss], ...]
    flops: int  # training FLOPs it spent
    tokens_per_s: float  # training throughput
    mfu: float | None  # model FLOPs utilisation (null: the device's peak unknown)
    devices: int  # processes it was spread over
    schedule: NotRequired[Schedule]


class Speedup(TypedDict):
    """Warm against cold: steps to the cold run's final loss, and the speedups (None where a
    run never gets there; `reason` says why)."""

    target_loss: float  # the cold run's final validation loss
    warm_steps: float | None  # steps the warm run takes to reach it
    cold_steps: float | None  # steps the cold run takes
    speedup: float | None  # cold_steps ÷ warm_steps
    speedup_with_source: float | None  # the same, the source's training counted
    speedup_with_tuning: float | None  # the same, tuning counted too
    reason: str | None  # why a speedup is null


class Applied(TypedDict):
    """The values the target trains at and `tuned.yaml` hands on, beside the proxy's tuned
    ones carried over unchanged, and which rule moved them."""

    hparams: dict[str, float]  # the values the target trains at
    carried: dict[str, float]  # the tuned values carried over unchanged
    log2_lr_shift: float  # applied − carried
    rule: str  # in words: what moved the LR and λ, or why nothing did


class TargetSection(TypedDict):
    width: int  # the target's width
    n_layer: int  # the target's depth
    method: str  # the warm start (warmstart.method)
    source_width: int | None  # the width it grows from (null: cold)
    applied: Applied  # the values it trains at
    source_lr: NotRequired[float]  # the LR the warm start's source trained at
    source_note: NotRequired[str]  # where the source's LR is not the target's, what it costs
    warm: NotRequired[TargetRun]
    cold: NotRequired[TargetRun]
    pad_function_gap: NotRequired[float]  # the loss the growth itself costs at step 0
    source_from_transfer: NotRequired[bool]  # the source is a transfer check run (free)
    stages: NotRequired[list[int]]  # the widths of progressive growth, if any


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

    log2_lr: float  # the LR, at the check's width and length
    regret: float  # its regret on the check's fitted curve
    interval: list[float]  # [lo, hi] ± the paired noise band, floored at 0


class VerifySection(TypedDict):
    # "full": whole target runs; "rung": target-length runs at a narrower width; "probes":
    # short runs at the target's width
    check: str
    steps: int  # of each run
    curve: Curve  # [[log2 LR, final validation loss], ...]
    applied_log2_lr: float  # the LR the target trained at
    centre_log2_lr: float  # the grid's centre: the applied LR, moved to the check's width, length
    optimum_log2_lr: float  # the check's fitted optimum
    optimum_interval: list[float]  # [lo, hi] log2 LRs within the noise of the best
    bracketed: bool  # the grid holds points on both sides of its best
    regret: float  # the centre's, against the curve's best point
    # per LR judged ("applied", "carried", "unshrunk", "one_axis"): its regret on the fitted curve
    judged: dict[str, JudgedLR]
    runs: int  # runs the check trained (the target stage's cold run not counted)
    flops_vs_target: float  # what it cost, in target runs
    verdict: VerdictRecord
    width: NotRequired[int]  # a rung's or the probes' width
    # a rung or probes: their optimum moved to the target by the joint fit's shift
    target_optimum_log2_lr: NotRequired[float]
    target_optimum_interval: NotRequired[list[float]]  # [lo, hi], moved the same way
    rule: NotRequired[str]  # that move in words


class BudgetItem(TypedDict):
    stage: str  # the stage that spends it
    what: str  # the check in words
    max_flops: float  # its worst case
    max_vs_target: float  # the same in target runs
    lost: NotRequired[str]  # a dropped item: what the verdict cannot say without it


class BudgetSection(TypedDict):
    """What the budget allotted before anything trained, and what the run then spent."""

    budget_vs_target: float  # everything besides the target's run, in target runs
    budget_flops: float
    max_flops: float  # the most the kept items may spend
    max_vs_target: float
    kept: list[BudgetItem]  # the checks kept, each at its worst case
    dropped: list[BudgetItem]  # the checks left out, and what is lost
    check_steps: int  # of each run of the check at the target
    check_width: int  # the width it trains at: the target's, or a rung's
    spent_vs_target: float  # what the checks spent besides the target's run
    within: bool


class HardwareSection(TypedDict):
    device: str  # cpu, cuda or mps
    precision: str  # fp32, bf16 or fp16
    compile: bool  # torch.compile on
    data_parallel: str  # ddp or fsdp
    processes: int  # processes a target-size run spreads over
    tune_tokens_per_s: float | None  # the tuning trials' median throughput


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


SUMMARY_FORMAT = "musweep-summary 1"  # bumped when a key changes meaning or goes away


class Summary(Sections):
    """`summary.json`: its format first; a stage's section appears once the stage is complete;
    then the run's verdict (once a check has one), each verdict's status, what the stages spent
    and where the runs trained."""

    format: str  # "musweep-summary 1" (SUMMARY_FORMAT): grows when a key changes meaning
    verdict: NotRequired[VerdictRecord]
    # each verdict's status (a sweep.core.verdict.Status): "run" (the verdict above),
    # "transfer", "target" (the check at the target), "coord_check" (µP's), where it exists
    status: dict[str, str]
    # each stage's FLOPs in target runs, "total", and "besides_target": all but the warm run
    cost_vs_target: dict[str, float]
    cost_share: dict[str, float]  # each stage's FLOPs as a fraction of all the run spent
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
