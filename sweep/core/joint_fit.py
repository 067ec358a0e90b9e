"""The LR optimum fitted jointly over width, tokens and batch (docs/methods.md §11). Pure, numpy.

Every measured optimum (a transfer curve at one width, an axes rung at the proxy width) is a point
(log2 width multiplier, log2 tokens ratio, log2 batch ratio; log2 η*), each ratio to the proxy's
tuning run. One least-squares plane through them,

    log2 η* = a + b·log2(m) + c·log2(D/D₀) + d·log2(B/B₀) + e·log2(m)·log2(D/D₀),

gives each slope with its standard error; an axis the points do not vary along is not fitted, and
the width × tokens term e (how the horizon's shift changes with width) only where the points
measure it: horizon rungs at a second width, so that it is not a blend of b and c.
µP predicts b = 0 (Bjorck et al. 2024 find the D dependence remains, c = −β). A prediction's
shift moves along each axis only in proportion to how well it is measured: the shift along width,
along the horizon (c and e together) and along batch is each shrunk toward zero (plain
carry-over) by max(0, 1 − (se/shift)²), so a shift within one standard error of zero moves
nothing and a noisy fit cannot push the answer far from carry-over. The horizon's two terms are
shrunk as one, with their covariance: measured at two widths, c and e are anticorrelated, each
alone is poorly known while the shift they make together at the widths measured is not, and
shrinking them apart would discard a horizon shift the rungs resolve. And a term in width
enters only as far as the widths it was measured at: beyond the widest, µP's prior (no drift)
takes over, for a bilinear fit extrapolated to a target many doublings wider can miss by more
than the whole shift (the held-out check at the widest width says by how much).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

AXES = ("width", "tokens", "batch")
INTERACTION = "width×tokens"
TERMS = (*AXES, INTERACTION)
# the parts of a shift, each shrunk by its own error: the horizon's terms move together
PARTS = {"width": ("width",), "horizon": ("tokens", INTERACTION), "batch": ("batch",)}


def feature(coords: Mapping[str, float], term: str) -> float:
    """A point's value of one term of the plane: an axis's log2 ratio, or the width × tokens
    product."""
    if term == INTERACTION:
        return coords.get("width", 0.0) * coords.get("tokens", 0.0)
    return coords.get(term, 0.0)


@dataclass(frozen=True)
class OptimumPoint:
    """One measured optimum: where it was measured (log2 ratios to the proxy) and its log2 LR."""

    coords: Mapping[str, float]  # axis -> log2 ratio; a missing axis is 0 (the proxy's)
    log2_lr: float
    stderr: float = math.nan  # how well this optimum is known (log2); NaN: unknown


@dataclass(frozen=True)
class JointFit:
    intercept: float
    slopes: Mapping[str, float]  # the fitted terms only (axes, and INTERACTION where measured)
    stderr: Mapping[str, float]  # inf when the points leave no degree of freedom
    points: int
    # per term in width, the (lowest, highest) log2 width multiplier it was measured at
    width_reach: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    # the slopes' covariance (term -> term -> value); empty: independent, each its stderr²
    covariance: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def shrunk(self, axis: str) -> float:
        """The slope weighted by how well it is measured (0 for an axis not fitted)."""
        slope, se = self.slopes.get(axis, 0.0), self.stderr.get(axis, math.inf)
        if slope == 0.0 or not math.isfinite(se):
            return 0.0
        return slope * max(0.0, 1.0 - (se / slope) ** 2)

    def beyond_error(self, axis: str, z: float = 2.0) -> bool:
        """Whether the slope lies more than `z` standard errors from zero."""
        se = self.stderr.get(axis, math.inf)
        return axis in self.slopes and math.isfinite(se) and abs(self.slopes[axis]) > z * se

    def log2_at(self, coords: Mapping[str, float]) -> float:
        """The plane's log2 η* at `coords` (unshrunk)."""
        return self.intercept + sum(s * feature(coords, a) for a, s in self.slopes.items())

    def shift(self, coords: Mapping[str, float]) -> float:
        """The log2 LR change from the proxy to `coords`: the sum of its parts, each shrunk by
        its own error."""
        return sum(part.shrunk for part in self.parts(coords).values())

    def parts(self, coords: Mapping[str, float]) -> dict[str, ShiftPart]:
        """The shift to `coords` along width, the horizon and batch (each part whose terms were
        fitted): as fitted, its standard error, and shrunk by it. Each term in width is read at
        the nearest width it was measured at."""
        out = {}
        for name, terms in PARTS.items():
            gradient = {t: self._reach_feature(coords, t) for t in terms if t in self.slopes}
            if gradient:
                fitted = sum(self.slopes[t] * g for t, g in gradient.items())
                variance = sum(
                    g1 * g2 * self._cov(t1, t2)
                    for t1, g1 in gradient.items()
                    for t2, g2 in gradient.items()
                )
                out[name] = ShiftPart(fitted, math.sqrt(max(variance, 0.0)))
        return out

    def _reach_feature(self, coords: Mapping[str, float], term: str) -> float:
        at = dict(coords)
        if term in self.width_reach:
            lo, hi = self.width_reach[term]
            at["width"] = min(max(at.get("width", 0.0), lo), hi)
        return feature(at, term)

    def _cov(self, a: str, b: str) -> float:
        if a in self.covariance and b in self.covariance[a]:
            return self.covariance[a][b]
        return self.stderr.get(a, math.inf) ** 2 if a == b else 0.0


@dataclass(frozen=True)
class ShiftPart:
    """One part of a predicted shift (log2 LR): as fitted and its standard error."""

    fitted: float
    stderr: float

    @property
    def shrunk(self) -> float:
        """The part weighted by how well it is measured: 0 within one standard error of 0."""
        if self.fitted == 0.0 or not math.isfinite(self.stderr):
            return 0.0
        return self.fitted * max(0.0, 1.0 - (self.stderr / self.fitted) ** 2)


def fit_joint(points: Sequence[OptimumPoint]) -> JointFit:
    """The least-squares plane through the finite optima, its slopes along every axis the points
    vary on. When every optimum says how well it is known, each is weighted by 1/stderr² and the
    slopes' errors are those the optima's errors imply, scaled up by the scatter about the plane
    where it is larger (the reduced χ²); otherwise the points weigh alike and the errors come
    from the scatter alone (inf with no degree of freedom). ValueError with no finite point."""
    finite = [p for p in points if math.isfinite(p.log2_lr)]
    if not finite:
        raise ValueError("a joint fit needs at least one finite optimum")
    axes = [a for a in AXES if len({round(p.coords.get(a, 0.0), 9) for p in finite}) >= 2]
    if {"width", "tokens"} <= set(axes):
        with_product = np.array([[1.0] + [feature(p.coords, a) for a in axes] for p in finite])
        with_product = np.column_stack(
            [with_product, [feature(p.coords, INTERACTION) for p in finite]]
        )
        if np.linalg.matrix_rank(with_product) == with_product.shape[1] < len(finite):
            axes.append(INTERACTION)  # measured apart from b and c, with a point to spare
    x = np.array([[1.0] + [feature(p.coords, a) for a in axes] for p in finite])
    y = np.array([p.log2_lr for p in finite])
    known = all(math.isfinite(p.stderr) and p.stderr > 0 for p in finite)
    w = np.array([1.0 / p.stderr**2 if known else 1.0 for p in finite])
    coef, *_ = np.linalg.lstsq(x * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)
    dof = len(finite) - x.shape[1]
    residual = y - x @ coef
    if dof > 0:
        scatter = float(w @ residual**2) / dof
        scale = max(1.0, scatter) if known else scatter
    else:  # nothing to measure the scatter by: the optima's own errors, if they have them
        scale = 1.0 if known else math.inf
    cov = np.linalg.pinv(x.T @ (x * w[:, None])) * scale
    errors = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    covariance = {
        a: {b: float(cov[i + 1, j + 1]) for j, b in enumerate(axes)} for i, a in enumerate(axes)
    }
    return JointFit(
        float(coef[0]),
        {a: float(c) for a, c in zip(axes, coef[1:], strict=True)},
        {a: float(e) for a, e in zip(axes, errors[1:], strict=True)},
        len(finite),
        width_reach(finite, axes),
        covariance if math.isfinite(scale) else {},
    )


def width_reach(points: Sequence[OptimumPoint], terms: Sequence[str]) -> dict[str, tuple]:
    """The log2 widths each fitted term in width was measured over: every point's for the width
    slope, those of the points off the proxy's tokens for the width × tokens term."""
    support = {
        "width": [p.coords.get("width", 0.0) for p in points],
        INTERACTION: [p.coords.get("width", 0.0) for p in points if p.coords.get("tokens", 0.0)],
    }
    return {t: (min(support[t]), max(support[t])) for t in terms if support.get(t)}


def held_out_error(points: Sequence[OptimumPoint], axis: str = "width") -> tuple[float, float]:
    """The fit without the points furthest along `axis`, and how far it misses them: (where they
    lie on the axis, mean measured − predicted log2 LR). NaNs when fewer than two positions on
    the axis leave something to fit."""
    finite = [p for p in points if math.isfinite(p.log2_lr)]
    positions = sorted({p.coords.get(axis, 0.0) for p in finite})
    if len(positions) < 3:  # the rest must still vary along the axis
        return math.nan, math.nan
    furthest = positions[-1]
    held = [p for p in finite if p.coords.get(axis, 0.0) == furthest]
    fit = fit_joint([p for p in finite if p.coords.get(axis, 0.0) != furthest])
    errors = [p.log2_lr - fit.log2_at(p.coords) for p in held]
    return furthest, float(np.mean(errors))
