"""One loss-against-LR curve, on synthetic curves whose answers are known exactly: the fitted
optimum, whether the grid brackets it, the LRs within the noise of the best, the regret of an LR."""

import math

import numpy as np
import pytest

from sweep.core.lr_curve import (
    Optimum,
    bracket,
    fit_optimum,
    loss_at,
    optimum_interval,
    relative_regret,
)

GRID = np.arange(-14.0, -5.5, 0.5)  # log2 LRs, 17 points


def parabola(x, vertex, curvature=0.3, floor=3.0):
    return floor + curvature * (np.asarray(x) - vertex) ** 2


def test_fit_optimum_recovers_an_off_grid_vertex_exactly():
    opt = fit_optimum(GRID, parabola(GRID, vertex=-9.3))
    assert opt.fitted and not opt.at_edge
    assert opt.log2_lr == pytest.approx(-9.3, abs=1e-9)
    assert opt.loss == pytest.approx(3.0, abs=1e-9)


def test_fit_optimum_uses_only_the_argmin_and_its_neighbours():
    losses = parabola(GRID, vertex=-9.3)
    losses[0] = 0.5 + losses[3]  # far points may be anything, as long as the argmin is kept
    losses[-1] = 100.0
    assert fit_optimum(GRID, losses).log2_lr == pytest.approx(-9.3, abs=1e-9)


def test_fit_optimum_accepts_unsorted_grids():
    order = np.random.default_rng(0).permutation(len(GRID))
    opt = fit_optimum(GRID[order], parabola(GRID, vertex=-8.8)[order])
    assert opt.log2_lr == pytest.approx(-8.8, abs=1e-9)


@pytest.mark.parametrize("vertex", [-16.0, -14.0, -6.0, -3.0])
def test_edge_argmin_is_flagged_and_not_fitted(vertex):
    losses = parabola(GRID, vertex)
    opt = fit_optimum(GRID, losses)
    assert opt == Optimum(float(GRID[np.argmin(losses)]), float(losses.min()), True, False)


def test_diverged_losses_are_ignored():
    losses = parabola(GRID, vertex=-9.3)
    losses[-4:] = np.nan  # the largest LRs diverged
    losses[2] = np.inf
    listed = [None if math.isnan(v) else float(v) for v in losses]  # JSON summaries use None
    for given in (losses, listed):
        opt = fit_optimum(GRID, given)
        assert opt.fitted and opt.log2_lr == pytest.approx(-9.3, abs=1e-9)


def test_argmin_next_to_a_diverged_point_counts_as_edge():
    losses = parabola(GRID, vertex=-9.0)
    losses[GRID > -9.0] = np.nan
    opt = fit_optimum(GRID, losses)
    assert opt.at_edge and not opt.fitted and opt.log2_lr == -9.0


def test_all_diverged_gives_nan_optimum():
    opt = fit_optimum(GRID, [math.nan] * len(GRID))
    assert math.isnan(opt.log2_lr) and opt.at_edge and not opt.fitted


def test_tied_minimum_fits_between_the_ties():
    # Ties take the lowest LR as the argmin; its neighbours are 5.0 and the tied 3.0.
    opt = fit_optimum([-12.0, -11.0, -10.0, -9.0], [5.0, 3.0, 3.0, 5.0])
    assert opt.fitted and opt.log2_lr == pytest.approx(-10.5)
    assert opt.loss == pytest.approx(2.75)  # parabola through (-12,5), (-11,3), (-10,3)


@pytest.mark.parametrize(
    "losses,vertex,loss",
    [
        # p(x) = 1.5x² + 2.5x + 2 through (-2, 3), (-1, 1), (0, 2), solved by hand: the vertex
        # -b/2a = -5/6 leans from the argmin towards the lower (right) neighbour ...
        ([3.0, 1.0, 2.0], -5 / 6, 23 / 24),
        # ... and its mirror image leans left by as much
        ([2.0, 1.0, 3.0], -7 / 6, 23 / 24),
        # equal neighbours: the vertex is the argmin itself
        ([2.0, 1.0, 2.0], -1.0, 1.0),
    ],
)
def test_vertex_of_three_points_leans_towards_the_lower_neighbour(losses, vertex, loss):
    opt = fit_optimum([-2.0, -1.0, 0.0], losses)
    assert opt.fitted and not opt.at_edge
    assert opt.log2_lr == pytest.approx(vertex, abs=1e-12)
    assert opt.loss == pytest.approx(loss, abs=1e-12)


def test_vertex_stays_between_the_midpoints_around_the_argmin():
    """For any interior argmin the fitted optimum is bracketed: the vertex lies between the
    midpoints argmin↔neighbours (so the clamp to the neighbours never binds) and its loss is at
    most the grid minimum. Random uneven spacings and losses over several orders of magnitude."""
    rng = np.random.default_rng(0)
    for _ in range(2000):
        x0, x1, x2 = np.cumsum(rng.uniform(1e-3, 3.0, 3)) - 20.0
        y1 = rng.uniform(0.0, 10.0)
        y0, y2 = y1 + 10.0 ** rng.uniform(-9, 1), y1 + rng.choice([0.0, 10.0 ** rng.uniform(-9, 1)])
        opt = fit_optimum([x0, x1, x2], [y0, y1, y2])
        assert opt.fitted, (x0, x1, x2, y0, y2)
        ulps = 1e-12 * (x2 - x0)  # equal right losses put the vertex exactly on a midpoint
        assert (x0 + x1) / 2 - ulps <= opt.log2_lr <= (x1 + x2) / 2 + ulps, (x0, x1, x2, y0, y2)
        assert opt.loss <= y1 + 1e-12 * abs(y1), (x0, x1, x2, y0, y2)


def test_fit_optimum_is_exact_on_an_unevenly_spaced_grid():
    # the argmin -10.8 has neighbours 1.2 to its left and 0.3 to its right
    grid = [-13.0, -12.0, -10.8, -10.5, -8.0, -7.0]
    opt = fit_optimum(grid, parabola(grid, vertex=-10.7, curvature=0.9, floor=2.5))
    assert opt.fitted and opt.log2_lr == pytest.approx(-10.7, abs=1e-9)
    assert opt.loss == pytest.approx(2.5, abs=1e-9)


@pytest.mark.parametrize("hole", [-10.0, -9.0])  # the argmin -9.5's left, then right neighbour
def test_a_diverged_neighbour_is_replaced_by_the_next_finite_point(hole):
    losses = parabola(GRID, vertex=-9.3)
    assert GRID[np.argmin(losses)] == -9.5
    losses[GRID.tolist().index(hole)] = np.nan
    opt = fit_optimum(GRID, losses)
    assert opt.fitted and not opt.at_edge
    assert opt.log2_lr == pytest.approx(-9.3, abs=1e-9)  # still 3 points of the same parabola


def test_flat_curve_is_an_edge_optimum_at_the_lowest_lr():
    """Ties take the lowest LR as the argmin, so a flat curve is unbracketed on the left."""
    opt = fit_optimum([-9.0, -10.0, -11.0, -12.0], [3.0, 3.0, 3.0, 3.0])
    assert opt == Optimum(-12.0, 3.0, at_edge=True, fitted=False)


def test_a_parabola_too_flat_to_resolve_returns_the_grid_argmin():
    """The one way to the `a > 0` guard: the left slope underflows to -0.0, so the three points
    give a flat parabola. The grid argmin comes back, bracketed but not fitted."""
    opt = fit_optimum([0.0, 4.0, 8.0], [5e-324, 0.0, 0.0])  # 5e-324: the smallest float
    assert opt == Optimum(4.0, 0.0, at_edge=False, fitted=False)


def test_fit_optimum_rejects_bad_input():
    with pytest.raises(ValueError):
        fit_optimum([-1.0, -2.0], [1.0])
    with pytest.raises(ValueError):
        fit_optimum([-1.0, -1.0, -2.0], [1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    "losses, low_open, high_open",
    [
        ([3.2, 3.0, 3.1], False, False),
        ([3.0, 3.1, 3.2], True, False),  # best at the lowest LR: look lower
        ([3.2, 3.1, 3.0], False, True),  # best at the highest LR: look higher
        ([3.2, 3.0, math.nan], False, False),  # a diverged run above closes the top
        ([3.2, 3.1, 3.0, math.nan], False, False),
        ([3.0, 3.0, 3.1], True, False),  # ties take the lowest LR
        ([math.nan, math.nan, math.nan], True, False),  # all diverged: the optimum is lower
        ([math.nan, 3.0, 3.1], False, False),
    ],
)
def test_bracket_says_which_side_may_hide_a_lower_loss(losses, low_open, high_open):
    sides = bracket([-2.0, -1.0, 0.0, 1.0][: len(losses)], losses)
    assert (sides.low_open, sides.high_open) == (low_open, high_open)
    assert sides.closed == (not low_open and not high_open)


def test_an_edge_optimum_is_the_same_for_bracket_and_fit():
    for vertex in (-16.0, -9.3, -3.0):
        losses = parabola(GRID, vertex)
        assert bracket(GRID, losses).closed == (not fit_optimum(GRID, losses).at_edge)


def test_loss_at_interpolates_between_grid_points_and_knows_divergence():
    xs, ys = [-3.0, -2.0, -1.0, 0.0], [3.4, 3.0, 3.2, math.nan]
    assert loss_at(xs, ys, -2.0) == 3.0
    assert loss_at(xs, ys, -1.5) == pytest.approx(3.1)
    assert loss_at(xs, ys, -0.5) == math.inf  # between a finite point and a diverged one
    assert loss_at(xs, ys, 0.0) == math.inf
    assert math.isnan(loss_at(xs, ys, 1.0))  # outside the grid: unknown


def test_relative_regret_is_the_fraction_the_lr_loses_against_the_best():
    xs, ys = [-3.0, -2.0, -1.0, 0.0], [3.3, 3.0, 3.15, math.nan]
    assert relative_regret(xs, ys, -2.0) == 0.0
    assert relative_regret(xs, ys, -3.0) == pytest.approx(0.1)
    assert relative_regret(xs, ys, -1.5) == pytest.approx(0.075 / 3.0)
    assert relative_regret(xs, ys, 0.0) == math.inf  # the run diverges at that LR
    assert math.isnan(relative_regret(xs, [math.nan] * 4, -2.0))


def test_a_flat_basin_has_a_wide_interval_and_a_small_regret():
    """Losses within 0.01 of each other over four LRs: wherever the argmin lands, the LRs as
    good as the best within a noise of 0.02 span the basin, and no point of it costs much."""
    xs = [-7.0, -6.0, -5.0, -4.0, -3.0, -2.0]
    ys = [2.80, 2.604, 2.599, 2.602, 2.597, 2.75]  # the argmin (-3) wanders to the basin's edge
    lo, hi = optimum_interval(xs, ys, band=0.02)
    assert lo < -6.0 and hi > -3.0  # the whole basin, and a little beyond where it crosses
    assert lo == pytest.approx(-7.0 + (2.80 - 2.617) / (2.80 - 2.604))
    assert all(relative_regret(xs, ys, x) < 0.003 for x in (-6.0, -5.0, -4.0))
    sharp = [3.5, 3.2, 2.6, 3.2, 3.5, 3.9]
    assert optimum_interval(xs, sharp, band=0.02)[1] - optimum_interval(xs, sharp, 0.02)[0] < 0.1


def test_the_interval_stops_at_the_grid_or_at_a_divergence():
    xs = [-3.0, -2.0, -1.0, 0.0]
    assert optimum_interval(xs, [3.0, 3.0, 3.0, 3.0], band=0.1) == (-3.0, 0.0)
    assert optimum_interval(xs, [3.0, 3.0, 3.0, math.nan], band=0.1) == (-3.0, -1.0)
    assert optimum_interval(xs, [3.2, 3.0, 3.1, 3.5], band=0.0) == (-2.0, -2.0)
    assert all(math.isnan(v) for v in optimum_interval(xs, [math.nan] * 4, band=0.1))
    with pytest.raises(ValueError):
        optimum_interval(xs, [3.0] * 4, band=-1.0)
