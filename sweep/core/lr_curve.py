"""One loss-against-LR curve (docs/methods.md §3): its optimum, whether the grid brackets it, the
interval of LRs as good as the optimum within the noise, and the regret of a given LR.

A curve is a set of (log2 LR, final loss) points on any grid; a diverged run is a NaN (or ±inf,
or None) loss. Pure functions, numpy only, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Optimum:
    log2_lr: float  # the parabola's vertex, or the grid argmin when not fitted
    loss: float  # the parabola's value at the vertex, or the grid minimum when not fitted
    at_edge: bool  # the argmin is the first or last finite grid point: the optimum is unbracketed
    fitted: bool  # True when the vertex of an upward parabola was used


@dataclass(frozen=True)
class Bracket:
    """Which sides of a curve's grid may still hide a lower loss."""

    low_open: bool  # the lowest LR is the best point, or every point diverged: look lower
    high_open: bool  # the highest LR is the best point and did not diverge: look higher

    @property
    def closed(self) -> bool:
        return not (self.low_open or self.high_open)


def points(log2_lrs: Sequence[float], losses: Sequence[float | None]) -> np.ndarray:
    """(n, 2) array of (log2 LR, loss) sorted by LR, diverged losses as NaN."""
    x = np.asarray(log2_lrs, dtype=float)
    y = np.asarray([np.nan if v is None else v for v in losses], dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"log2_lrs and losses must be 1-D, equal length: {x.shape}, {y.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"log2_lrs must be finite, got {x.tolist()}")
    if len(np.unique(x)) != len(x):
        raise ValueError(f"log2_lrs must not repeat, got {x.tolist()}")
    y[~np.isfinite(y)] = np.nan
    order = np.argsort(x, kind="stable")
    return np.stack([x[order], y[order]], axis=1)


def _finite(log2_lrs: Sequence[float], losses: Sequence[float | None]) -> np.ndarray:
    curve = points(log2_lrs, losses)
    return curve[np.isfinite(curve[:, 1])]


def fit_optimum(log2_lrs: Sequence[float], losses: Sequence[float | None]) -> Optimum:
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
    finite = _finite(log2_lrs, losses)
    if len(finite) == 0:
        return Optimum(math.nan, math.nan, at_edge=True, fitted=False)
    i = int(np.argmin(finite[:, 1]))
    grid = Optimum(float(finite[i, 0]), float(finite[i, 1]), at_edge=False, fitted=False)
    if i == 0 or i == len(finite) - 1:
        return Optimum(grid.log2_lr, grid.loss, at_edge=True, fitted=False)
    (x0, y0), (x1, y1), (x2, y2) = finite[i - 1 : i + 2].tolist()
    # Newton form p(x) = y0 + d1 (x - x0) + a (x - x0)(x - x1): exact, and no conditioning issue.
    d1 = (y1 - y0) / (x1 - x0)
    a = ((y2 - y1) / (x2 - x1) - d1) / (x2 - x0)
    if not a > 0:  # flattened by rounding or underflow: no vertex to trust
        return grid
    vertex = (x0 + x1) / 2 - d1 / (2 * a)
    loss = y0 + d1 * (vertex - x0) + a * (vertex - x0) * (vertex - x1)
    return Optimum(vertex, loss, at_edge=False, fitted=True)


def bracket(log2_lrs: Sequence[float], losses: Sequence[float | None]) -> Bracket:
    """Whether the grid brackets the curve's minimum.

    A side is closed by a point beyond the best one: a finite higher loss, or (towards larger
    LRs) a diverged run, which is the cliff every curve ends in. With every point diverged the
    optimum lies below the grid. Ties take the lowest LR, as `fit_optimum` does.
    """
    curve = points(log2_lrs, losses)
    finite = np.isfinite(curve[:, 1])
    if not finite.any():
        return Bracket(low_open=True, high_open=False)
    i = int(np.nanargmin(curve[:, 1]))
    return Bracket(low_open=i == 0, high_open=i == len(curve) - 1)


def steps_past_open_sides(curve: dict[int, float]) -> list[int]:
    """For a curve on integer grid steps: one step below the lowest if its low side is open, one
    above the highest if its high side is; nothing once the grid brackets the optimum."""
    ks = sorted(curve)
    sides = bracket(ks, [curve[k] for k in ks])
    return [ks[0] - 1] * sides.low_open + [ks[-1] + 1] * sides.high_open


def loss_at(log2_lrs: Sequence[float], losses: Sequence[float | None], log2_lr: float) -> float:
    """The curve's loss at `log2_lr`, linear between grid points. +inf where the nearest grid
    point on either side diverged (the LR is past a divergence); NaN outside the grid."""
    curve = points(log2_lrs, losses)
    x, y = curve[:, 0], curve[:, 1]
    if not x[0] <= log2_lr <= x[-1]:
        return math.nan
    j = int(np.searchsorted(x, log2_lr))
    if x[j] == log2_lr:
        return float(y[j]) if math.isfinite(y[j]) else math.inf
    (x0, y0), (x1, y1) = (x[j - 1], y[j - 1]), (x[j], y[j])
    if not (math.isfinite(y0) and math.isfinite(y1)):
        return math.inf
    return float(y0 + (y1 - y0) * (log2_lr - x0) / (x1 - x0))


def relative_regret(
    log2_lrs: Sequence[float], losses: Sequence[float | None], log2_lr: float
) -> float:
    """(loss at `log2_lr` − the curve's lowest loss) ÷ the lowest loss: what using that LR
    instead of the curve's best costs, as a fraction. +inf if the run diverges there; NaN when
    the curve has no finite point or the LR lies outside its grid."""
    finite = _finite(log2_lrs, losses)
    if len(finite) == 0:
        return math.nan
    best = float(finite[:, 1].min())
    return (loss_at(log2_lrs, losses, log2_lr) - best) / best


def fitted_regret(
    log2_lrs: Sequence[float], losses: Sequence[float | None], log2_lr: float
) -> float:
    """`relative_regret` read off the fitted curve: the parabola of `fit_optimum` between the
    argmin's neighbours (linear beyond them), against the parabola's vertex. Two LRs off the
    grid (a rule's, a prediction's) compare fairly this way; against the best grid point, any
    LR between grid points looks worse than the grid point itself. NaN outside the grid."""
    optimum = fit_optimum(log2_lrs, losses)
    if not optimum.fitted:
        return relative_regret(log2_lrs, losses, log2_lr)
    finite = _finite(log2_lrs, losses)
    i = int(np.argmin(finite[:, 1]))
    (x0, y0), (x1, y1), (x2, y2) = finite[i - 1 : i + 2].tolist()
    if x0 <= log2_lr <= x2:
        d1 = (y1 - y0) / (x1 - x0)
        a = ((y2 - y1) / (x2 - x1) - d1) / (x2 - x0)
        loss = y0 + d1 * (log2_lr - x0) + a * (log2_lr - x0) * (log2_lr - x1)
    else:
        loss = loss_at(log2_lrs, losses, log2_lr)
    return (loss - optimum.loss) / optimum.loss


def optimum_interval(
    log2_lrs: Sequence[float], losses: Sequence[float | None], band: float
) -> tuple[float, float]:
    """The log2 LRs around the best point whose loss is within `band` of the lowest, the curve
    linear between grid points: [low, high]. An end where the curve never leaves the band is the
    grid's last point on that side (the interval may reach further); a diverged neighbour ends
    it at the last finite point. NaN, NaN when no point is finite."""
    if band < 0:
        raise ValueError(f"band must be >= 0, got {band}")
    curve = points(log2_lrs, losses)
    x, y = curve[:, 0], curve[:, 1]
    if not np.isfinite(y).any():
        return math.nan, math.nan
    i = int(np.nanargmin(y))
    level = y[i] + band

    def edge(step: int) -> float:
        j = i
        while 0 <= j + step < len(x):
            k = j + step
            if not math.isfinite(y[k]):
                return float(x[j])
            if y[k] > level:  # crosses the band between j and k
                return float(x[j] + (x[k] - x[j]) * (level - y[j]) / (y[k] - y[j]))
            j = k
        return float(x[j])

    return edge(-1), edge(+1)
