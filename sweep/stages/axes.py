"""The axes stage: do the tuned values carry along training length and batch size, and by which
rule? (docs/methods.md §11)

At the proxy width, each rung of an axis (`axes.horizon`: multiples of the proxy's tokens, by
its steps; `axes.batch`: multiples of its batch at the same tokens) is trained over a grid of
log2 LRs centred on the tuned one, extended until its optimum is bracketed, as the transfer
check does across widths. Once a rung's LR series is settled, a grid of log2 weight decays at
that rung's best LR (when the tuned weight decay is not zero, `axes.weight_decay`). From the
optima: β of η* ∝ D^(−β) fitted on the horizon rungs (or `axes.beta`), the LR each rule gives at
each rung and the loss it costs there against plain carry-over, the weight decay at a fixed
AdamW timescale against a fixed one, and the target's LR and weight decay predicted for its
tokens and batch (`sweep.core.axis_rules.carry`). With the transfer check's curves, the joint fit
over width and tokens, whose shrunk shift the target trains at (`sweep.stages.applied`).

A rung past `axes.budget` (its worst case, in target runs' FLOPs) is left out before any job.
Runs are dealt to Submitit jobs as the transfer check's are and write one result file each,
named by a hash of the tuned values, so an interrupted stage reruns only what it lacks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from omegaconf import DictConfig

from sweep.config import (
    VerifyCheck,
    check_steps,
    check_width,
    proxy_setting,
    run_config,
    target_setting,
    verify_check,
)
from sweep.core.axis_rules import (
    Setting,
    adamw_timescale,
    carry,
    fit_power_law,
    weight_decay_for,
)
from sweep.core.joint_fit import OptimumPoint, fit_joint, held_out_error
from sweep.core.lr_curve import bracket, fit_optimum, fitted_regret, optimum_interval
from sweep.core.metrics import drift
from sweep.core.records import read_record
from sweep.core.sections import (
    AxesSection,
    AxisSection,
    HeldOut,
    HeldOutFit,
    JointSection,
    Prediction,
    Sections,
    ShiftPartSection,
    TransferSection,
    WeightDecayAxis,
    WideHorizon,
)
from sweep.core.train import RunConfig
from sweep.stages.plan import StagePlan, StepSeconds, estimated_seconds, parallel_jobs
from sweep.stages.stage import Context, PointGrid, Section, hparams_tag, job_count
from sweep.stages.transfer import best_step, grid_extension, grid_seeds

AXES = ("horizon", "batch")
COVER_REACH = 4  # grid steps a series may grow by to bring a rule's value onto it


@dataclass(frozen=True)
class AxisRun:
    axis: str  # "horizon" (tokens by steps) or "batch" (batch at the same tokens)
    rung: float  # the multiple of the proxy's tokens or batch
    lr_step: int  # log2 LR = tuned + lr_step × ladder.lr_resolution
    wd_step: int | None  # None: the tuned weight decay; else log2 λ = tuned + wd_step × res
    seed: int
    width: int | None = None  # None: the proxy's; else a wider ladder width (horizon rungs only)


def rungs(cfg: DictConfig, axis: str) -> list[float]:
    """The axis's rungs within the budget, 1 (the proxy itself) first; [] when the axis is off."""
    asked = sorted({1.0, *map(float, cfg.axes[axis])}) if cfg.axes[axis] else []
    return [r for r in asked if r in kept_rungs(cfg)[axis]]


def kept_rungs(cfg: DictConfig) -> dict[str, list[float]]:
    """Every axis's rungs at the proxy width, smallest first, as long as the checks' worst case
    (every series at `lr_max_points`, and as many weight-decay points) stays within `axes.budget`
    target runs."""
    return rungs_within_budget(cfg)[0]


def wide_rungs(cfg: DictConfig) -> dict[int, list[float]]:
    """{width: horizon rungs} at the wider ladder widths `axes.widths` asks for, in what the
    budget leaves after the proxy's rungs. Rung 1 is the transfer check's curve of that width
    when it trains the tuning run's steps, so it is trained here only when it does not."""
    return rungs_within_budget(cfg)[1]


def wide_widths(cfg: DictConfig) -> list[int]:
    """The ladder widths past the proxy whose horizon rungs the joint fit asks for."""
    return list(cfg.ladder.widths[1 : cfg.axes.widths]) if cfg.axes.horizon else []


def rungs_within_budget(
    cfg: DictConfig,
) -> tuple[dict[str, list[float]], dict[int, list[float]], float]:
    """The rungs kept within `axes.budget` (per axis at the proxy, per wider width the horizon's)
    and the most their grids may cost: each rung priced at its worst case, cheapest first."""
    tuned = dict(cfg.ladder.hparams)
    target = run_config(cfg, cfg.ladder.target, "mup", tuned, cfg.ladder.target_steps, cfg.seed)
    allowance = cfg.axes.budget * target.flops
    series = 2 if cfg.axes.weight_decay else 1
    spent, kept = 0.0, {axis: [] for axis in AXES}
    wanted = sorted(
        (float(r), axis) for axis in AXES if cfg.axes[axis] for r in {1.0, *cfg.axes[axis]}
    )
    for rung, axis in wanted:
        run = rung_run(cfg, tuned, AxisRun(axis, rung, 0, None, cfg.seed))
        worst = series * cfg.ladder.lr_max_points * len(grid_seeds(cfg)) * run.flops
        if spent + worst <= allowance or rung == 1.0:
            spent += worst
            kept[axis].append(rung)
    wide: dict[int, list[float]] = {}
    duplicate = cfg.ladder.transfer_steps == cfg.ladder.tune_steps
    for width in wide_widths(cfg):
        for rung in kept["horizon"]:
            if rung == 1.0 and duplicate:
                continue
            run = rung_run(cfg, tuned, AxisRun("horizon", rung, 0, None, cfg.seed, width))
            worst = cfg.ladder.lr_max_points * len(grid_seeds(cfg)) * run.flops
            if spent + worst <= allowance:
                spent += worst
                wide.setdefault(width, []).append(rung)
    return kept, wide, spent


def series(
    results: Mapping[AxisRun, float],
    axis: str,
    rung: float,
    lr_step: int | None,
    cfg: DictConfig,
    width: int | None = None,
) -> dict[int, float]:
    """A rung's LR series ({lr step: loss}, lr_step None) or its weight-decay series at
    `lr_step` ({wd step: loss}, the tuned weight decay as step 0), averaged over the seeds; at
    the proxy width, or at `width`."""
    out: dict[int, list[float]] = {}
    for run, loss in results.items():
        if (run.axis, run.rung, run.width) != (axis, rung, width):
            continue
        if lr_step is None and run.wd_step is None:
            out.setdefault(run.lr_step, []).append(loss)
        elif lr_step is not None and run.lr_step == lr_step:
            out.setdefault(run.wd_step or 0, []).append(loss)
    seeds = len(grid_seeds(cfg))
    return {
        k: (math.fsum(v) / len(v) if all(math.isfinite(x) for x in v) else math.nan)
        for k, v in sorted(out.items())
        if len(v) == seeds
    }


def covering(curve: Mapping[int, float], step: float, reach: int = COVER_REACH) -> list[int]:
    """The grid steps that extend a series to include `step` (a rule's value, in grid steps),
    at most `reach` of them: a rule is judged on measured points, never extrapolated."""
    if not curve or not math.isfinite(step):
        return []
    low, high = min(curve), max(curve)
    wanted = range(math.floor(step), low) if step < low else range(high + 1, math.ceil(step) + 1)
    return [k for k in wanted][:reach] if len(wanted) <= reach else []


def next_runs(cfg: DictConfig, tuned: Mapping[str, float], results: Mapping[AxisRun, float]):
    """The runs the check still lacks, in three phases: each rung's LR grid until settled; then
    the points that bring each rule's LR onto its rung's grid (the rule needs every rung's
    optimum first); then each rung's weight-decay grid at its best LR, covering the λ of a fixed
    AdamW timescale."""
    ladder, seeds, res = cfg.ladder, grid_seeds(cfg), cfg.ladder.lr_resolution
    asked = [(axis, rung) for axis in AXES for rung in rungs(cfg, axis)]
    wide = [("horizon", rung, w) for w, kept in wide_rungs(cfg).items() for rung in kept]

    def owed(runs: list[AxisRun]) -> list[AxisRun]:
        return [run for run in runs if run.wd_step != 0 and run not in results]

    grids = owed(
        [
            AxisRun(axis, rung, k, None, s, width)
            for axis, rung, width in [(a, r, None) for a, r in asked] + wide
            for k in grid_extension(
                series(results, axis, rung, None, cfg, width),
                ladder.lr_span,
                ladder.lr_max_points,
            )
            for s in seeds
        ]
    )
    if grids:
        return grids
    rules = {axis: rule_log2_lrs(cfg, tuned, results, axis) for axis in AXES}
    tuned_log2 = math.log2(tuned["lr"])
    cover = owed(
        [
            AxisRun(axis, rung, k, None, s)
            for axis, rung in asked
            for k in covering(
                series(results, axis, rung, None, cfg), (rules[axis][rung] - tuned_log2) / res
            )
            for s in seeds
        ]
    )
    if cover or not (cfg.axes.weight_decay and tuned["weight_decay"] > 0):
        return cover
    todo = []
    for axis, rung in asked:
        best = best_step(series(results, axis, rung, None, cfg))
        if best is None:
            continue
        curve = series(results, axis, rung, best, cfg)
        steps = grid_extension(curve, ladder.lr_span, ladder.lr_max_points)
        if not steps:
            at_tau = timescale_log2_wd(cfg, tuned, axis, rung, best)
            steps = covering(curve, (at_tau - math.log2(tuned["weight_decay"])) / res)
        todo += owed([AxisRun(axis, rung, best, j, s) for j in steps for s in seeds])
    return todo


def rung_run(cfg: DictConfig, tuned: Mapping[str, float], run: AxisRun) -> RunConfig:
    """One run of the check: the proxy at the rung's steps and batch, the run's LR and λ."""
    ladder, res = cfg.ladder, cfg.ladder.lr_resolution
    hparams = dict(tuned) | {"lr": tuned["lr"] * 2.0 ** (run.lr_step * res)}
    if run.wd_step is not None:
        hparams["weight_decay"] = tuned["weight_decay"] * 2.0 ** (run.wd_step * res)
    steps, batch = ladder.tune_steps, ladder.batch_size
    if run.axis == "horizon":
        steps = round(steps * run.rung)
    else:  # the same tokens in bigger batches
        batch, steps = round(batch * run.rung), round(steps / run.rung)
    width = ladder.widths[0] if run.width is None else run.width
    config = run_config(cfg, width, "mup", hparams, steps, run.seed)
    return replace(config, batch_size=batch)


def run_key(run: AxisRun, tag: str) -> str:
    wd = "" if run.wd_step is None else f"_wd{run.wd_step:+d}"
    width = "" if run.width is None else f"_w{run.width}"
    return f"{run.axis}{width}_x{run.rung:g}_lr{run.lr_step:+d}{wd}_s{run.seed}_{tag}"


def read_results(folder: Path, tuned: Mapping[str, float]) -> dict[AxisRun, float]:
    out = {}
    for path in sorted(folder.glob(f"*_{hparams_tag(tuned)}.json")):
        if (record := read_record(path)) is not None:
            loss = math.nan if record["loss"] is None else float(record["loss"])
            out[AxisRun(**record["run"])] = loss
    return out


def read_flops(folder: Path, tuned: Mapping[str, float]) -> float:
    paths = folder.glob(f"*_{hparams_tag(tuned)}.json")
    return float(sum((read_record(p) or {}).get("flops", 0) for p in paths))


def lr_curve(
    cfg: DictConfig, tuned, results, axis: str, rung: float, width: int | None = None
) -> tuple[list, list]:
    """A rung's (log2 LRs, losses), at the proxy width or at `width`."""
    curve = series(results, axis, rung, None, cfg, width)
    res, tuned_log2 = cfg.ladder.lr_resolution, math.log2(tuned["lr"])
    return [tuned_log2 + k * res for k in curve], list(curve.values())


def lr_optima(cfg: DictConfig, tuned, results, axis: str) -> dict[float, float]:
    """{rung: fitted optimum log2 LR} for the rungs with a finite point."""
    out = {}
    for rung in rungs(cfg, axis):
        xs, ys = lr_curve(cfg, tuned, results, axis, rung)
        if any(math.isfinite(y) for y in ys):
            out[rung] = fit_optimum(xs, ys).log2_lr
    return out


def exponent_of(cfg: DictConfig, tuned, results, axis: str) -> tuple[float, str]:
    """The axis's rule exponent and where it comes from: β for the horizon (`rule_exponent`),
    κ for the batch (given)."""
    if axis == "batch":
        return float(cfg.axes.kappa), "given"
    optima = lr_optima(cfg, tuned, results, axis)
    return rule_exponent(cfg, {rung_setting(cfg, axis, r).tokens: v for r, v in optima.items()})


def rule_log2_lrs(cfg: DictConfig, tuned, results, axis: str) -> dict[float, float]:
    """{rung: the log2 LR the axis's rule gives there from the tuned LR}."""
    exponent, _ = exponent_of(cfg, tuned, results, axis)
    proxy, out = proxy_setting(cfg), {}
    for rung in rungs(cfg, axis):
        setting = rung_setting(cfg, axis, rung)
        if axis == "horizon":
            lr, _ = carry(tuned["lr"], 0.0, proxy, setting, beta=exponent)
        else:
            lr, _ = carry(tuned["lr"], 0.0, proxy, setting, beta=0.0, kappa=exponent)
        out[rung] = math.log2(lr)
    return out


def timescale_log2_wd(cfg: DictConfig, tuned, axis: str, rung: float, lr_step: int) -> float:
    """log2 of the λ that keeps the proxy's AdamW timescale at the rung, at its LR step."""
    proxy, setting = proxy_setting(cfg), rung_setting(cfg, axis, rung)
    tau = adamw_timescale(proxy.batch_tokens, tuned["lr"], tuned["weight_decay"], proxy.tokens)
    lr = tuned["lr"] * 2.0 ** (lr_step * cfg.ladder.lr_resolution)
    return math.log2(weight_decay_for(tau, setting.batch_tokens, lr, setting.tokens))


def axis_summary(
    cfg: DictConfig, tuned: Mapping[str, float], results: Mapping[AxisRun, float], axis: str
) -> AxisSection:
    """One axis: per rung the LR curve, its optimum, and the regret of the tuned LR and of the
    rule's LR; the rule's exponent; the drift of the optimum without and with the rule (the
    optimum less the rule's shift); the longest horizon rung predicted by β fitted without it;
    and the weight-decay optimum per rung against a fixed λ and a fixed AdamW timescale."""
    tuned_log2 = math.log2(tuned["lr"])
    exponent, source = exponent_of(cfg, tuned, results, axis)
    name = "beta" if axis == "horizon" else "kappa"
    rules = rule_log2_lrs(cfg, tuned, results, axis)
    optima = lr_optima(cfg, tuned, results, axis)
    kept = rungs(cfg, axis)
    curves, bracketed, regret_carry, regret_rule = {}, {}, {}, {}
    for rung in kept:
        xs, ys = lr_curve(cfg, tuned, results, axis, rung)
        key = f"{rung:g}"
        curves[key] = [[x, y] for x, y in zip(xs, ys, strict=True)]
        bracketed[key] = bracket(xs, ys).closed
        regret_carry[key] = fitted_regret(xs, ys, tuned_log2)
        regret_rule[key] = fitted_regret(xs, ys, rules[rung])
    out = AxisSection(
        rungs=kept,
        **{name: exponent, f"{name}_from": source},
        curves=curves,
        bracketed=bracketed,
        regret_carry=regret_carry,
        regret_rule=regret_rule,
        optimum_log2_lr={f"{r:g}": v for r, v in optima.items()},
        rule_log2_lr={f"{r:g}": v for r, v in rules.items()},
        drift_without_rule=drift(optima),
        drift_with_rule=drift({r: v - (rules[r] - tuned_log2) for r, v in optima.items()}),
        dropped_for_budget=[float(r) for r in cfg.axes[axis] if float(r) not in kept],
    )
    if axis == "horizon" and cfg.axes.beta is None and len(optima) >= 3:
        out["held_out"] = held_out(cfg, tuned, results, optima)
    if axis == "horizon" and (wide := wide_rungs(cfg)):
        out["widths"] = {
            str(w): wide_curves(cfg, tuned, results, w, kept) for w, kept in wide.items()
        }
    if cfg.axes.weight_decay and tuned["weight_decay"] > 0:
        out["weight_decay"] = wd_summary(cfg, tuned, results, axis)
    return out


def wide_curves(cfg: DictConfig, tuned, results, width: int, kept: Sequence[float]) -> WideHorizon:
    """The horizon rungs at a wider ladder width: each rung's curve and optimum."""
    out = WideHorizon(curves={}, bracketed={}, optimum_log2_lr={})
    for rung in kept:
        xs, ys = lr_curve(cfg, tuned, results, "horizon", rung, width)
        if not any(math.isfinite(y) for y in ys):
            continue
        key = f"{rung:g}"
        out["curves"][key] = [[x, y] for x, y in zip(xs, ys, strict=True)]
        out["bracketed"][key] = bracket(xs, ys).closed
        out["optimum_log2_lr"][key] = fit_optimum(xs, ys).log2_lr
    return out


def held_out(
    cfg: DictConfig,
    tuned: Mapping[str, float],
    results: Mapping[AxisRun, float],
    optima: Mapping[float, float],
) -> HeldOut:
    """The longest horizon rung predicted by β fitted on the others, and that LR's regret."""
    tokens = {r: rung_setting(cfg, "horizon", r).tokens for r in optima}
    longest = max(optima)
    held = {tokens[r]: v for r, v in optima.items() if r != longest}
    beta = fit_power_law(list(held), list(held.values())).exponent
    log2_lr = math.log2(tuned["lr"]) - beta * math.log2(tokens[longest] / proxy_setting(cfg).tokens)
    xs, ys = lr_curve(cfg, tuned, results, "horizon", longest)
    return HeldOut(
        rung=longest, beta=beta, log2_lr=log2_lr, regret_rule=fitted_regret(xs, ys, log2_lr)
    )


def wd_summary(cfg: DictConfig, tuned, results, axis: str) -> WeightDecayAxis:
    """Per rung, at its best LR: the λ optimum, and the regret of λ held fixed against λ at the
    proxy's AdamW timescale."""
    res, tuned_log2_wd = cfg.ladder.lr_resolution, math.log2(tuned["weight_decay"])
    out = WeightDecayAxis(
        curves={}, optimum_log2_wd={}, timescale_log2_wd={}, regret_fixed={}, regret_timescale={}
    )
    for rung in rungs(cfg, axis):
        best = best_step(series(results, axis, rung, None, cfg))
        if best is None:
            continue
        curve = series(results, axis, rung, best, cfg)
        xs = [tuned_log2_wd + j * res for j in curve]
        ys = list(curve.values())
        at_tau = timescale_log2_wd(cfg, tuned, axis, rung, best)
        key = f"{rung:g}"
        out["curves"][key] = [[x, y] for x, y in zip(xs, ys, strict=True)]
        out["optimum_log2_wd"][key] = fit_optimum(xs, ys).log2_lr
        out["timescale_log2_wd"][key] = at_tau
        out["regret_fixed"][key] = fitted_regret(xs, ys, tuned_log2_wd)
        out["regret_timescale"][key] = fitted_regret(xs, ys, at_tau)
    return out


def rule_exponent(cfg: DictConfig, optima: Mapping[float, float]) -> tuple[float, str]:
    """β: `axes.beta` when given, else fitted on the horizon's rungs ({tokens: log2 LR*}),
    with its standard error when three or more rungs give one."""
    if cfg.axes.beta is not None:
        return float(cfg.axes.beta), "given"
    if len(optima) < 2:
        return 0.0, "none (one rung: the plain carry-over)"
    fit = fit_power_law(list(optima), list(optima.values()))
    error = f" ± {fit.stderr:.2f}" if math.isfinite(fit.stderr) else ""
    return fit.exponent, f"fitted on {fit.points} rungs{error}"


def rung_setting(cfg: DictConfig, axis: str, rung: float) -> Setting:
    run = rung_run(cfg, dict(cfg.ladder.hparams), AxisRun(axis, rung, 0, None, cfg.seed))
    return Setting(run.tokens_per_step, run.steps)


def optimum_stderr(interval: Sequence[float], resolution: float) -> float:
    """How well an optimum is known, in log2 LR: a quarter of its interval (the LRs within the
    noise band of the best loss span about ±2 standard errors), at least an eighth of a grid
    step; NaN without an interval."""
    lo, hi = interval
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return math.nan
    return max((hi - lo) / 4, resolution / 8)


def optimum_points(
    cfg: DictConfig, axes: Mapping[str, AxisSection], transfer: TransferSection | None
) -> list[OptimumPoint]:
    """Every bracketed optimum measured: the transfer check's µP curves (each width at the
    transfer check's tokens) and the axes' rungs (at the proxy width, and the horizon's at the
    wider widths `axes.widths` asks for), read from their sections,
    each placed by its log2 ratios to the proxy's tuning run and known to within its interval of
    the seed noise (the transfer check's band; without it the optima weigh alike)."""
    proxy, ladder, res = proxy_setting(cfg), cfg.ladder, cfg.ladder.lr_resolution
    points, band = [], math.nan
    if transfer is not None:
        band, mup = transfer["noise"]["band"], transfer["mup"]
        tokens = math.log2(ladder.transfer_steps / ladder.tune_steps)
        points += [
            OptimumPoint(
                {"width": math.log2(int(w) / ladder.widths[0]), "tokens": tokens},
                v,
                optimum_stderr(mup["optimum_interval"][w], res),
            )
            for w, v in mup["optimum_log2_lr"].items()
            if mup["bracketed"][w]
        ]

    def rung_points(
        axis: str, curves: WideHorizon | AxisSection, width: int, kept: Sequence[float]
    ) -> None:
        for rung in kept:
            key = f"{rung:g}"
            if key not in curves["optimum_log2_lr"] or not curves["bracketed"][key]:
                continue
            optimum = curves["optimum_log2_lr"][key]
            xs, ys = ([p[i] for p in curves["curves"][key]] for i in (0, 1))
            interval = optimum_interval(xs, ys, band) if math.isfinite(band) else (math.nan,) * 2
            at = rung_setting(cfg, axis, rung)
            coords = {
                "width": math.log2(width / ladder.widths[0]),
                "tokens": math.log2(at.tokens / proxy.tokens),
                "batch": math.log2(at.batch_tokens / proxy.batch_tokens),
            }
            points.append(OptimumPoint(coords, optimum, optimum_stderr(interval, res)))

    wide = wide_rungs(cfg)
    for axis, section in axes.items():
        rung_points(axis, section, ladder.widths[0], section["rungs"])
        for width, curves in section.get("widths", {}).items():
            rung_points(axis, curves, int(width), wide.get(int(width), []))
    return points


def joint_summary(cfg: DictConfig, tuned_log2: float, points: list[OptimumPoint]) -> JointSection:
    """The joint fit of the optima, the target's log2 LR it predicts from the tuned one, and
    how well it predicts the widest width and the longest horizon when fitted without them."""
    fit = fit_joint(points)
    proxy, target = proxy_setting(cfg), target_setting(cfg)
    at_target = {
        "width": math.log2(cfg.ladder.target / cfg.ladder.widths[0]),
        "tokens": math.log2(target.tokens / proxy.tokens),
        "batch": math.log2(target.batch_tokens / proxy.batch_tokens),
    }
    shift = fit.shift(at_target)
    out = JointSection(
        points=fit.points,
        slopes=dict(fit.slopes),
        stderr=dict(fit.stderr),
        shifts={
            name: ShiftPartSection(fitted=part.fitted, stderr=part.stderr, shrunk=part.shrunk)
            for name, part in fit.parts(at_target).items()
        },
        width_drift=fit.beyond_error("width"),
        log2_lr=tuned_log2 + shift,
        log2_shift_vs_carry=shift,
        log2_lr_unshrunk=tuned_log2 + fit.log2_at(at_target) - fit.intercept,
    )
    if verify_check(cfg) != VerifyCheck.full:  # the check's width and length (a rung, probes)
        at_check = at_target | {
            "width": math.log2(check_width(cfg) / cfg.ladder.widths[0]),
            "tokens": math.log2(check_steps(cfg) / cfg.ladder.tune_steps),
        }
        out["log2_lr_at_check"] = tuned_log2 + fit.shift(at_check)
    for axis in ("width", "tokens"):
        at, error = held_out_error(points, axis)
        if math.isfinite(error):
            out[f"held_out_{axis}"] = HeldOutFit(at_log2=at, error_log2=error)
    return out


def axes_summary(
    cfg: DictConfig,
    tuned: Mapping[str, float],
    results: Mapping[AxisRun, float],
    transfer: TransferSection | None = None,
) -> AxesSection:
    """Every axis checked, and the target's LR and λ predicted from them next to µTransfer's
    plain carry-over; with the transfer check's curves, the joint fit over width and tokens."""
    axes = {axis: axis_summary(cfg, tuned, results, axis) for axis in AXES if rungs(cfg, axis)}
    beta, kappa = 0.0, cfg.axes.kappa
    if "horizon" in axes:
        beta = axes["horizon"]["beta"]
    elif cfg.axes.beta is not None:
        beta = float(cfg.axes.beta)  # given, with no horizon rungs to fit it on
    lr, wd = carry(
        tuned["lr"],
        tuned["weight_decay"],
        proxy_setting(cfg),
        target_setting(cfg),
        beta=beta,
        kappa=kappa,
    )
    prediction = Prediction(
        lr=lr,
        weight_decay=wd,
        log2_lr=math.log2(lr),
        log2_shift_vs_carry=math.log2(lr / tuned["lr"]),
        beta=beta,
        kappa=kappa,
        proxy_tokens=proxy_setting(cfg).tokens,
        target_tokens=target_setting(cfg).tokens,
    )
    section = AxesSection(**axes, prediction=prediction)
    points = optimum_points(cfg, axes, transfer)
    if points:
        section["joint"] = joint_summary(cfg, math.log2(tuned["lr"]), points)
    section["runs"] = len(results)
    return section


class AxesStage(PointGrid):
    """At the proxy width: the LR (and λ) optimum along training length and batch size."""

    name = folder = "axes"
    run_type = AxisRun

    def skipped(self, ctx: Context) -> str | None:
        if not any(rungs(ctx.cfg, axis) for axis in AXES):
            return "no axis asked (axes.horizon, axes.batch)"
        return None

    def key(self, run: AxisRun, tag: str) -> str:
        return run_key(run, tag)

    def point(self, cfg: DictConfig, tuned: Mapping[str, float], run: AxisRun) -> RunConfig:
        return rung_run(cfg, tuned, run)

    def max_rounds(self, ctx: Context) -> int:
        return 2 * (ctx.cfg.ladder.lr_max_points + 3)  # the LR grids, then the λ grids

    def read(self, ctx: Context) -> dict[AxisRun, float]:
        return read_results(ctx.run_dir / self.folder, ctx.require_tuned())

    def todo(self, ctx: Context, done: Mapping[AxisRun, float]) -> list[AxisRun]:
        return next_runs(ctx.cfg, ctx.require_tuned(), done)

    def plan(self, ctx: Context, step_seconds: StepSeconds) -> StagePlan:
        """The first round of every rung's grid; at most, every series at `lr_max_points`
        (twice with the weight-decay grids), which `axes.budget` bounds."""
        cfg, tuned = ctx.cfg, ctx.tuned_or_default()
        done = read_results(ctx.run_dir / self.folder, tuned)
        first = [rung_run(cfg, tuned, run) for run in next_runs(cfg, tuned, done)]
        kept = kept_rungs(cfg)
        series_ = 2 if cfg.axes.weight_decay and tuned["weight_decay"] > 0 else 1
        worst = [
            rung_run(cfg, tuned, AxisRun(axis, rung, 0, None, seed))
            for axis in AXES
            for rung in kept[axis]
            for seed in grid_seeds(cfg)
            for _ in range(series_ * cfg.ladder.lr_max_points)
        ]
        wide = wide_rungs(cfg)
        worst += [
            rung_run(cfg, tuned, AxisRun("horizon", rung, 0, None, seed, width))
            for width, kept_here in wide.items()
            for rung in kept_here
            for seed in grid_seeds(cfg)
            for _ in range(cfg.ladder.lr_max_points)
        ]
        dropped = [
            f"{axis} ×{r:g}" for axis in AXES for r in cfg.axes[axis] if float(r) not in kept[axis]
        ]
        asked = ", ".join(
            f"{axis} ×{'/'.join(f'{r:g}' for r in kept[axis])}" for axis in AXES if kept[axis]
        )
        note = f"at width {cfg.ladder.widths[0]}: {asked}" if asked else "no axis asked"
        for width, kept_here in wide.items():
            note += f"; at width {width}: horizon ×{'/'.join(f'{r:g}' for r in kept_here)}"
        if dropped:
            note += f"; past axes.budget, left out: {', '.join(dropped)}"
        return StagePlan(
            self.name,
            job_count(cfg, len(first)),
            len(first),
            sum(r.flops for r in first),
            len(worst),
            sum(r.flops for r in worst),
            estimated_seconds(first, step_seconds, parallel_jobs(cfg)),
            note,
        )

    def summary(self, ctx: Context, so_far: Sections) -> Section | None:
        if ctx.tuned is None or not self.complete(ctx, results := self.read(ctx)):
            return None
        flops = read_flops(ctx.run_dir / self.folder, ctx.tuned)
        section = axes_summary(ctx.cfg, ctx.tuned, results, so_far.get("transfer"))
        return Section(self.name, section, flops, "axes_flops")
