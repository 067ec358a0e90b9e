"""Transfer and warmstart metrics on synthetic curves whose answers are known exactly."""

import math

import numpy as np
import pytest

from sweep.core.metrics import (
    Optimum,
    drift,
    fit_optimum,
    regret,
    speedup,
    steps_to_reach,
    transfer_verdict,
    wider_is_better,
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


def test_drift_of_shifted_parabolas_equals_the_shift():
    optima = {
        w: fit_optimum(GRID, parabola(GRID, -10.2 + 0.7 * k)).log2_lr
        for k, w in enumerate([64, 128, 256, 512])
    }
    assert drift(optima) == pytest.approx(3 * 0.7, abs=1e-9)
    assert drift({64: -9.0}) == 0.0
    assert drift({64: -9.0, 128: math.nan, 256: -8.0}) == pytest.approx(1.0)
    assert math.isnan(drift({64: math.nan}))


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


def test_regret_uses_the_nearest_grid_point():
    grid = {-11.0: 3.5, -10.0: 3.2, -9.0: 3.0, -8.0: 3.3}
    assert regret(grid, -9.2) == pytest.approx(0.0)
    assert regret(grid, -9.7) == pytest.approx(0.2)
    assert regret(grid, -10.5) == pytest.approx(0.5)  # tie → the lower LR (-11)
    assert regret(grid, -20.0) == pytest.approx(0.5)
    assert regret({**grid, -7.0: math.nan}, -7.1) == math.inf  # proxy LR diverges at target
    assert math.isnan(regret({-9.0: math.nan}, -9.0))


def test_wider_is_better_true_for_monotone_curves_with_noise_within_tol():
    curves = {"64": [4.0, 3.5, 3.6], "128": [3.9, 3.41, 3.61], "256": [3.8, 3.3, math.nan]}
    assert wider_is_better(curves, tol=0.02)
    assert wider_is_better({64: [4.0], 128: [3.9]})


def test_wider_is_better_false_when_a_wider_model_is_worse():
    curves = {64: [4.0, 3.5, 3.6], 128: [3.9, 3.6, 3.5], 256: [3.8, 3.3, 3.4]}
    assert not wider_is_better(curves, tol=0.02)
    assert wider_is_better(curves, tol=0.2)


def test_wider_is_better_needs_a_comparable_lr():
    assert not wider_is_better({64: [3.0, math.nan], 128: [math.nan, 2.0]})
    with pytest.raises(ValueError):
        wider_is_better({64: [3.0, 2.0], 128: [2.0]})
    assert not wider_is_better({64: [3.0, 2.0]})


def test_transfer_verdict_lines():
    yes = transfer_verdict(0.4, 2.2)
    assert yes.startswith("µP transfers") and "0.40" in yes and "2.20" in yes
    no = transfer_verdict(1.5, 2.2)
    assert no.startswith("µP does not transfer") and "1.50" in no
    both = transfer_verdict(0.2, 0.3)
    assert both.startswith("µP transfers") and "does not separate" in both
    assert "undetermined" in transfer_verdict(math.nan, 2.0)
    assert "\n" not in yes + no + both


def curve(steps, losses):
    return [(int(s), float(v)) for s, v in zip(steps, losses, strict=True)]


STEPS = np.arange(0, 401, 25)


def test_steps_to_reach_first_evaluated_step():
    c = curve(STEPS, 5.0 - STEPS / 100)
    assert steps_to_reach(c, 3.0) == 200
    assert steps_to_reach(c, 2.99) == 225  # no interpolation between evaluations
    assert steps_to_reach(c, 0.0) is None
    assert steps_to_reach([(10, math.nan), (20, 1.0)], 2.0) == 20


def test_speedup_four_times():
    cold = curve(STEPS, np.maximum(5.0 - STEPS / 100, 3.0))  # reaches its final 3.0 at step 200
    warm = curve(STEPS, np.maximum(3.5 - STEPS / 100, 2.5))  # ≤ 3.0 first at step 50
    out = speedup(warm, cold)
    assert out["target_loss"] == 3.0
    assert (out["cold_steps"], out["warm_steps"]) == (200, 50)
    assert out["speedup"] == pytest.approx(4.0)
    assert out["speedup_with_source"] == pytest.approx(4.0)
    assert out["reason"] is None
    assert speedup(warm, cold, source_steps_equiv=50)["speedup_with_source"] == pytest.approx(2.0)


def test_speedup_none_when_warm_never_reaches_the_target():
    cold = curve(STEPS, 5.0 - STEPS / 100)
    warm = curve(STEPS, np.full(len(STEPS), 1.5 + 5.0 - 4.0))  # stuck at 2.5 > cold final 1.0
    out = speedup(warm, cold, source_steps_equiv=10)
    assert out["speedup"] is None and out["speedup_with_source"] is None
    assert out["cold_steps"] == 400 and out["warm_steps"] is None
    assert "never reached" in out["reason"]


def test_speedup_edge_cases():
    cold = curve(STEPS, 5.0 - STEPS / 100)
    warm_done = curve(STEPS, np.full(len(STEPS), 0.5))
    out = speedup(warm_done, cold, source_steps_equiv=100)
    assert out["speedup"] == math.inf and out["speedup_with_source"] == pytest.approx(4.0)
    diverged_cold = [*cold[:-1], (400, math.nan)]
    assert speedup(warm_done, diverged_cold)["speedup"] is None
    with pytest.raises(ValueError):
        speedup(warm_done, cold, source_steps_equiv=-1)
