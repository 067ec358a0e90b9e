"""Transfer and warm-start metrics (docs/methods.md §3, §7): pure functions of losses, numpy
only, no I/O.

- `fit_optimum`: the optimum of one width's LR curve, a parabola in log2(LR) through the grid
  argmin and its two neighbours.
- `drift`: how far the optimum moves across widths (max − min, log2 units).
- `regret`: what the target loses by using the proxy-tuned LR instead of its own best grid LR.
- `wider_is_better`: at a fixed LR, loss does not get worse with width.
- `transfer_verdict`: one readable line from the µP and SP drifts; `run_verdict` adds a failing
  µP coordinate check to it.
- `steps_to_reach`, `speedup`: warm vs cold target runs, measured in steps to reach the cold
  run's final validation loss.

Diverged runs are recorded as NaN (or ±inf) losses; every function here ignores them where a
loss is only a candidate (optimum search, best loss) and treats them as "never reached" where a
loss must be achieved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Optimum:
    log2_lr: float  # the parabola's vertex, or the grid argmin when not fitted
    loss: float  # the parabola's value at the vertex, or the grid minimum when not fitted
    at_edge: bool  # the argmin is the first or last finite grid point: the optimum is unbracketed
    fitted: bool  # True when the vertex of an upward parabola was used


def _finite_sorted(log2_lrs: Sequence[float], losses: Sequence[float]) -> np.ndarray:
    """(n, 2) array of (log2 LR, loss) with finite losses only, sorted by LR."""
    x = np.asarray(log2_lrs, dtype=float)
    y = np.asarray([np.nan if v is None else v for v in losses], dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"log2_lrs and losses must be 1-D, equal length: {x.shape}, {y.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"log2_lrs must be finite, got {x.tolist()}")
    if len(np.unique(x)) != len(x):
        raise ValueError(f"log2_lrs must not repeat, got {x.tolist()}")
    keep = np.isfinite(y)
    points = np.stack([x[keep], y[keep]], axis=1)
    return points[np.argsort(points[:, 0], kind="stable")]


def fit_optimum(log2_lrs: Sequence[float], losses: Sequence[float]) -> Optimum:
    """The optimum LR of one loss-vs-LR curve (docs/methods.md §3).

    Non-finite losses (diverged runs) are dropped first; the grid argmin and its two neighbours
    are then taken among the remaining points in LR order, so an argmin whose higher-LR neighbour
    diverged counts as being at the edge. Through those 3 points goes the exact parabola in
    log2(LR); its vertex is the optimum, and lies between the midpoints of the argmin and each
    neighbour (the argmin is the lowest of the three). When the argmin is the first or last
    finite point (`at_edge=True`) or the parabola does not open upward, the grid argmin itself
    is returned with `fitted=False`. (Ties take the lowest LR as the argmin, so an interior
    argmin always has a higher left neighbour and the parabola opens upward, unless rounding or
    underflow of tiny losses flattens it.) With no finite loss at all the optimum is NaN
    (`at_edge=True`, `fitted=False`).
    """
    points = _finite_sorted(log2_lrs, losses)
    if len(points) == 0:
        return Optimum(math.nan, math.nan, at_edge=True, fitted=False)
    i = int(np.argmin(points[:, 1]))
    grid = Optimum(float(points[i, 0]), float(points[i, 1]), at_edge=False, fitted=False)
    if i == 0 or i == len(points) - 1:
        return Optimum(grid.log2_lr, grid.loss, at_edge=True, fitted=False)
    (x0, y0), (x1, y1), (x2, y2) = points[i - 1 : i + 2].tolist()
    # Newton form p(x) = y0 + d1 (x - x0) + a (x - x0)(x - x1): exact, and no conditioning issue.
    d1 = (y1 - y0) / (x1 - x0)
    a = ((y2 - y1) / (x2 - x1) - d1) / (x2 - x0)
    if not a > 0:  # flattened by rounding or underflow: no vertex to trust
        return grid
    vertex = (x0 + x1) / 2 - d1 / (2 * a)
    loss = y0 + d1 * (vertex - x0) + a * (vertex - x0) * (vertex - x1)
    return Optimum(vertex, loss, at_edge=False, fitted=True)


def drift(optima: Mapping[int, float]) -> float:
    """Max − min of the per-width optima in log2 units; non-finite optima are ignored.

    0.0 for a single finite optimum, NaN when there is none.
    """
    values = [float(v) for v in optima.values() if v is not None and math.isfinite(v)]
    return max(values) - min(values) if values else math.nan


def regret(target_losses_by_lr: Mapping[float, float], proxy_log2_lr: float) -> float:
    """Target loss at the grid LR nearest the proxy-tuned one minus the target grid's best loss.

    Keys are log2 LRs of the target's own grid. A tie in distance goes to the lower LR (the
    safer side of the divergence cliff). If the nearest grid point diverged the regret is +inf;
    if the whole grid diverged it is NaN.
    """
    if not target_losses_by_lr:
        raise ValueError("regret needs a non-empty target grid")
    lrs = sorted(float(k) for k in target_losses_by_lr)
    losses = {float(k): v for k, v in target_losses_by_lr.items()}
    finite = [v for v in losses.values() if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan
    nearest = min(lrs, key=lambda lr: (abs(lr - proxy_log2_lr), lr))
    at_proxy = losses[nearest]
    if at_proxy is None or not math.isfinite(at_proxy):
        return math.inf
    return float(at_proxy) - min(finite)


def wider_is_better(curves: Mapping[int, Sequence[float]], tol: float = 0.02) -> bool:
    """At every LR where all widths have a finite loss, loss is non-increasing in width.

    `curves` maps width (int, or its string as in the JSON summary) to losses on a shared LR
    grid. A wider model may be worse by at most `tol` (absolute, in loss units) than the next
    narrower one. False if there is nothing to compare: fewer than 2 widths, or no LR with a
    finite loss for every width.
    """
    if len(curves) < 2:
        return False
    widths = sorted(curves, key=int)
    if len({len(curves[w]) for w in widths}) != 1:
        raise ValueError("all widths' curves must have the same length (one shared LR grid)")
    table = np.array(
        [[np.nan if v is None else v for v in curves[w]] for w in widths], dtype=float
    )  # (width, lr)
    comparable = np.all(np.isfinite(table), axis=0)
    if not comparable.any():
        return False
    steps = np.diff(table[:, comparable], axis=0)  # wider minus narrower, per LR
    return bool(np.all(steps <= tol))


def transfer_verdict(mup_drift: float, sp_drift: float, threshold: float = 1.0) -> str:
    """One line: does the µP optimum stay within `threshold` log2 across widths, vs SP's drift."""
    sp = f"SP drifts {sp_drift:.2f}" if math.isfinite(sp_drift) else "SP drift unknown"
    if not math.isfinite(mup_drift):
        return f"transfer undetermined (no µP drift: every width diverged or was not run; {sp})"
    limit = f"{threshold:.1f}" if threshold == round(threshold, 1) else f"{threshold:g}"
    if mup_drift <= threshold:
        line = f"µP transfers (drift {mup_drift:.2f} ≤ {limit} log2; {sp})"
        if math.isfinite(sp_drift) and sp_drift <= threshold:
            line += " — SP also stays within the threshold, so this ladder does not separate them"
        return line
    return f"µP does not transfer (drift {mup_drift:.2f} > {limit} log2; {sp})"


def run_verdict(transfer: str | None, mup_coord_check: Mapping | None) -> str | None:
    """The run's verdict: the transfer verdict, preceded by a failing µP coordinate check (a µP
    whose activations grow with width is not µP, whatever the transfer curves say)."""
    parts = []
    if mup_coord_check is not None and not mup_coord_check["passes"]:
        parts.append(
            f"the µP coordinate check FAILS (worst slope {mup_coord_check['worst_slope']:.2f} > "
            f"{mup_coord_check['threshold']:g} at {mup_coord_check['module']}, step "
            f"{mup_coord_check['step']}): activations grow with width"
        )
    if transfer:
        parts.append(transfer)
    return "; ".join(parts) or None


def _sorted_curve(curve: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    out = []
    for step, loss in curve:
        value = math.nan if loss is None else float(loss)
        out.append((int(step), value))
    return sorted(out, key=lambda p: p[0])


def steps_to_reach(curve: Sequence[tuple[int, float]], target_loss: float) -> int | None:
    """First evaluated step whose loss is ≤ target_loss (no interpolation); None if never."""
    for step, loss in _sorted_curve(curve):
        if math.isfinite(loss) and loss <= target_loss:
            return step
    return None


def speedup(
    warm_curve: Sequence[tuple[int, float]],
    cold_curve: Sequence[tuple[int, float]],
    source_steps_equiv: float = 0.0,
) -> dict:
    """Warm vs cold target runs (docs/methods.md §7), from (step, validation loss) curves.

    target = the cold run's final (last-step) validation loss; speedup = cold steps to reach it
    ÷ warm steps to reach it; speedup_with_source = cold steps ÷ (warm steps + source_steps_equiv),
    where source_steps_equiv is what training the warm start's source cost, in target-model steps
    (source FLOPs ÷ target FLOPs per step; tuning is left out, warm and cold runs both use it).
    Returns target_loss, warm_steps, cold_steps, speedup, speedup_with_source and reason (None
    when both speedups are defined). A warm run that never reaches the target gives speedup None;
    one that is already there at step 0 gives +inf (and a finite speedup_with_source if the
    source cost is positive).
    """
    if not source_steps_equiv >= 0:
        raise ValueError(f"source_steps_equiv must be >= 0, got {source_steps_equiv}")
    out = {
        "target_loss": math.nan,
        "warm_steps": None,
        "cold_steps": None,
        "speedup": None,
        "speedup_with_source": None,
        "reason": None,
    }
    cold = _sorted_curve(cold_curve)
    if not cold or not math.isfinite(cold[-1][1]):
        out["reason"] = "cold run has no finite final validation loss"
        return out
    target = cold[-1][1]
    out["target_loss"] = target
    out["cold_steps"] = cold_steps = steps_to_reach(cold, target)
    out["warm_steps"] = warm_steps = steps_to_reach(warm_curve, target)
    if cold_steps == 0:
        out["reason"] = "cold run was already at its final loss at step 0 (degenerate curve)"
        return out
    if warm_steps is None:
        out["reason"] = f"warm run never reached the cold final loss {target:.4g}"
        return out

    def ratio(denominator: float) -> float:
        return cold_steps / denominator if denominator > 0 else math.inf

    out["speedup"] = ratio(warm_steps)
    out["speedup_with_source"] = ratio(warm_steps + source_steps_equiv)
    if warm_steps == 0:
        out["reason"] = "warm run was already at the cold final loss at step 0"
    return out
