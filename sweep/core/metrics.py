"""Transfer across a ladder (docs/methods.md §3): how far the optimum moves, whether wider is
better, and the verdicts. Pure functions of per-width results, numpy only, no I/O.

One curve's optimum, bracket, interval and regret are `sweep.core.lr_curve`'s; warm-start
speedups are `sweep.core.speedup`'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from sweep.core.verdict import Status, Verdict, combined

DEFAULT_TOLERANCE = 0.005  # the regret µP may show at any width: 0.5% of the loss


def pooled_std(groups: Sequence[Sequence[float]]) -> tuple[float, int]:
    """The pooled sample standard deviation of groups of repeated measurements (one group: the
    seeds of one point), and its degrees of freedom. Non-finite values are dropped; (NaN, 0)
    when no group holds two values."""
    squares, dof = 0.0, 0
    for group in groups:
        values = np.asarray([v for v in group if v is not None and math.isfinite(v)], float)
        if len(values) >= 2:
            squares += float(((values - values.mean()) ** 2).sum())
            dof += len(values) - 1
    return (math.sqrt(squares / dof), dof) if dof else (math.nan, 0)


def difference_band(std: float, seeds_per_point: int) -> float:
    """The loss difference two points must exceed to be told apart: two standard deviations of
    the difference of two means of `seeds_per_point` seeds each (0 when the noise is unknown)."""
    return 2.0 * std * math.sqrt(2.0 / seeds_per_point) if math.isfinite(std) else 0.0


def paired_band(std: float, seeds_per_point: int) -> float:
    """The same for two points trained at the same seeds: two standard deviations of the mean of
    `seeds_per_point` same-seed differences, `std` being one difference's (0 when unknown). With
    a correlation ρ between the seeds' losses at the two points, std = σ·√(2(1−ρ)), so this is
    the unpaired band × √(1−ρ)."""
    return 2.0 * std / math.sqrt(seeds_per_point) if math.isfinite(std) else 0.0


def drift(optima: Mapping[int, float]) -> float:
    """Max − min of the per-width optima in log2 units; non-finite optima are ignored.

    0.0 for a single finite optimum, NaN when there is none.
    """
    values = [float(v) for v in optima.values() if v is not None and math.isfinite(v)]
    return max(values) - min(values) if values else math.nan


def drift_beyond_noise(intervals: Mapping[int, Sequence[float]]) -> float:
    """The least drift the widths' optimum intervals allow: how far apart the two most distant
    intervals are (0 when one LR lies in every interval). A flat basin gives wide intervals and
    so no drift, however the argmin wanders inside it. NaN with no finite interval."""
    finite = [(lo, hi) for lo, hi in intervals.values() if math.isfinite(lo) and math.isfinite(hi)]
    if not finite:
        return math.nan
    return max(0.0, max(lo for lo, _ in finite) - min(hi for _, hi in finite))


def wider_is_better(
    curves: Mapping[int, Mapping[float, float]], tol: float = 0.02, up_to: float = math.inf
) -> bool:
    """At every LR up to `up_to` that every width has a finite loss at, loss is non-increasing
    in width.

    `curves` maps width (int, or its string as in the JSON summary) to {log2 LR: loss}; widths
    may have different grids and only their shared LRs are compared. A wider model may be worse
    by at most `tol` (absolute, in loss units) than the next narrower one. The transfer check
    compares up to the tuned LR: the LRs a user would train at, short of the divergence cliff,
    where small models' finite-width effects decide which width fails first. False if there is
    nothing to compare: fewer than 2 widths, or no shared LR with a finite loss at every width.
    """
    if len(curves) < 2:
        return False
    widths = sorted(curves, key=int)
    grids = [
        {float(x): np.nan if v is None else float(v) for x, v in curves[w].items()} for w in widths
    ]
    shared = set.intersection(*(set(grid) for grid in grids))
    lrs = sorted(x for x in shared if x <= up_to + 1e-9)
    table = np.array([[grid[x] for x in lrs] for grid in grids], dtype=float)  # (width, lr)
    if not lrs or not (comparable := np.all(np.isfinite(table), axis=0)).any():
        return False
    steps = np.diff(table[:, comparable], axis=0)  # wider minus narrower, per LR
    return bool(np.all(steps <= tol))


def percent(fraction: float) -> str:
    return "diverges" if fraction == math.inf else f"{100 * fraction:.2f}%"


def transfer_verdict(
    mup_regret: Mapping[int, float],
    sp_regret: Mapping[int, float],
    *,
    unbracketed: Sequence[str] = (),
    noise: float | Mapping[int, float] = 0.0,
    tolerance: float = DEFAULT_TOLERANCE,
    resolved: str = "",
    optima: Mapping[int, Sequence[float]] | None = None,
    tuned_log2_lr: float = math.nan,
) -> Verdict:
    """One line on whether the proxy's LR serves every width: µP transfers when every width's
    relative regret is within `tolerance` or within its `noise` (the relative size of a
    difference its seeds cannot resolve: one for all widths, or one per width), and this is set
    against SP's worst regret. "inconclusive" while some width's optimum is not bracketed by its
    LR grid: there the regret is a lower bound and the verdict could go either way. `resolved`
    (what more seeds near the tolerance settled) closes the line. Where it fails though the
    µP widths' optimum intervals (`optima`) share an LR that the tuned one lies outside, the line
    says so: the optimum carried over, the tuned LR is what misses it."""
    if unbracketed:
        return Verdict(
            Status.inconclusive,
            f"inconclusive: the LR grid does not bracket the optimum of {', '.join(unbracketed)} "
            "(ladder.lr_max_points reached); regrets there are lower bounds",
        )
    finite_mup = {w: r for w, r in mup_regret.items() if not math.isnan(r)}
    if not finite_mup:
        return Verdict(Status.inconclusive, "inconclusive: no µP width has a finite loss")
    bands = {w: band_at(noise, w) for w in finite_mup}
    w_mup = max(  # beyond both bounds first, then above the tolerance, then the largest regret
        finite_mup,
        key=lambda w: (
            2 if finite_mup[w] > max(tolerance, bands[w]) else int(finite_mup[w] > tolerance),
            finite_mup[w],
        ),
    )
    sp = {w: r for w, r in sp_regret.items() if not math.isnan(r)}
    tail = f"; more seeds near the tolerance: {resolved}" if resolved else ""
    r_mup, nu = finite_mup[w_mup], bands[w_mup]
    if r_mup > max(tolerance, nu):
        shared = shared_optimum(optima or {}, tuned_log2_lr)
        return failing_verdict(w_mup, r_mup, nu, tolerance, sp, shared, tail)
    allowed = max(tolerance, *bands.values())
    return passing_verdict(w_mup, r_mup, nu, tolerance, sp, allowed, tail)


def noise_clause(nu: float) -> str:
    return f", noise ±{percent(nu)}" if nu > 0 else ", noise not measured"


def failing_verdict(
    width: int,
    regret: float,
    nu: float,
    tolerance: float,
    sp: Mapping[int, float],
    shared: str,
    tail: str,
) -> Verdict:
    """The tuned LR loses more than the tolerance and the noise at `width`; `shared` names the
    LR every width's optimum interval holds, where there is one."""
    bounds = f"(tolerance {percent(tolerance)}{noise_clause(nu)})"
    if shared:
        return Verdict(
            Status.fails,
            f"the tuned LR does not transfer: it loses {percent(regret)} at width {width} "
            f"{bounds}, though µP's optimum does: {shared}; {sp_clause(sp)}{tail}",
        )
    return Verdict(
        Status.fails,
        f"µP does not transfer: it loses {percent(regret)} at width {width} at the tuned LR "
        f"{bounds}; {sp_clause(sp)}{tail}",
    )


def passing_verdict(
    width: int,
    regret: float,
    nu: float,
    tolerance: float,
    sp: Mapping[int, float],
    allowed: float,
    tail: str,
) -> Verdict:
    """The worst width is within the tolerance or within its noise; says too when SP's worst
    regret is within the `allowed` bound, so that the ladder does not separate µP from SP."""
    if regret <= tolerance:
        status = Status.passes
        line = (
            f"µP transfers: worst regret {percent(regret)} at width {width} "
            f"(tolerance {percent(tolerance)}{noise_clause(nu)}); {sp_clause(sp)}"
        )
    else:  # above the tolerance, within the noise: the seeds cannot tell it from 0
        status = Status.within_noise
        line = (
            f"µP transfers within the noise: worst regret {percent(regret)} at width {width} is "
            f"above the tolerance {percent(tolerance)} but within the noise ±{percent(nu)} "
            f"(more seeds would resolve it); {sp_clause(sp)}"
        )
    if sp and (r_sp_worst := max(sp.values())) <= allowed:
        bound = "tolerance" if r_sp_worst <= tolerance else "noise"
        line += f" — SP is within the {bound} too, so this ladder does not separate them"
    return Verdict(status, line + tail)


def coord_verdict(check: Mapping) -> Verdict:
    """A coordinate check as a verdict: its worst slope, where, against its bound."""
    passes = check["passes"]
    return Verdict(
        Status.passes if passes else Status.fails,
        f"worst slope {check['worst_slope']:.2f} at {check['module']}, step {check['step']} "
        f"({'≤' if passes else '>'} {check['threshold']:g})",
    )


def shared_optimum(optima: Mapping[int, Sequence[float]], tuned_log2_lr: float) -> str:
    """Where every width's optimum interval holds one LR that the tuned LR lies outside, that
    in words ("" otherwise): the optimum carried over across widths, the tuned LR missed it."""
    finite = [(lo, hi) for lo, hi in optima.values() if math.isfinite(lo) and math.isfinite(hi)]
    if len(finite) < 2 or len(finite) < len(optima) or not math.isfinite(tuned_log2_lr):
        return ""
    lo, hi = max(lo for lo, _ in finite), min(hi for _, hi in finite)
    if lo > hi or lo <= tuned_log2_lr <= hi:
        return ""
    gap = lo - tuned_log2_lr if tuned_log2_lr < lo else tuned_log2_lr - hi
    side = "below" if tuned_log2_lr < lo else "above"
    return (
        f"every width's optimum interval holds log2 {lo:.2f} to {hi:.2f}, and the tuned LR (log2 "
        f"{tuned_log2_lr:.2f}, Optuna's best trial) lies {gap:.2f} log2 {side} them"
    )


def band_at(noise: float | Mapping[int, float], width: int) -> float:
    """A width's noise band, from one for all widths or one per width (0 where unknown)."""
    value = noise.get(width, 0.0) if isinstance(noise, Mapping) else noise
    return value if math.isfinite(value) else 0.0


def sp_clause(sp: Mapping[int, float]) -> str:
    """SP's worst regret over the ladder, in words."""
    if not sp:
        return "SP not measured"
    width, regret = max(sp.items(), key=lambda kv: kv[1])
    verb = "diverges at the tuned LR" if regret == math.inf else f"loses {percent(regret)}"
    return f"SP {verb} at width {width}"


def run_verdict(
    transfer: Verdict | None, mup_coord_check: Mapping | None, target: Verdict | None = None
) -> Verdict | None:
    """The run's verdict: the transfer verdict and the direct check at the target, preceded by a
    failing µP coordinate check (a µP whose activations grow with width is not µP, whatever the
    transfer curves say); its status the worst of theirs."""
    parts = []
    if mup_coord_check is not None and not mup_coord_check["passes"]:
        parts.append(
            Verdict(
                Status.fails,
                f"the µP coordinate check FAILS (worst slope {mup_coord_check['worst_slope']:.2f} "
                f"> {mup_coord_check['threshold']:g} at {mup_coord_check['module']}, step "
                f"{mup_coord_check['step']}): activations grow with width",
            )
        )
    return combined(parts + [part for part in (transfer, target) if part])
