"""The joint fit of the LR optimum over width, tokens and batch: it recovers the slopes of a known
family of curves, flags a width drift beyond its error and not one within it, and lets a slope
into a prediction only as far as it is measured."""

import math

import numpy as np
import pytest

from sweep.core.joint_fit import INTERACTION, JointFit, OptimumPoint, fit_joint, held_out_error
from sweep.core.lr_curve import fit_optimum

TUNED = -5.0  # log2 LR the grids are centred on


def measured_optimum(true_log2_lr: float, rng: np.random.Generator, noise: float) -> float:
    """The optimum fitted from a 5-point loss curve (a parabola in log2 LR, plus loss noise)."""
    xs = [TUNED + k for k in range(-2, 3)]
    ys = [2.0 + 0.05 * (x - true_log2_lr) ** 2 + noise * rng.standard_normal() for x in xs]
    return fit_optimum(xs, ys).log2_lr


def ladder(
    width_slope: float,
    tokens_slope: float,
    noise: float = 0.0,
    seed: int = 0,
    interaction: float = 0.0,
    wide_rungs: bool = True,
):
    """The transfer check's design (widths at the proxy's tokens) and the horizon rungs (tokens
    at the proxy's width), and the horizon rungs at the second width (`wide_rungs`)."""
    rng = np.random.default_rng(seed)
    design = [(m, 0.0) for m in (0.0, 1.0, 2.0, 3.0)] + [(0.0, 1.0), (0.0, 2.0)]
    design += [(1.0, 1.0), (1.0, 2.0)] if wide_rungs else []
    return [
        OptimumPoint(
            {"width": m, "tokens": t},
            measured_optimum(
                TUNED + 0.3 + width_slope * m + tokens_slope * t + interaction * m * t, rng, noise
            ),
        )
        for m, t in design
    ]


def test_the_fit_recovers_a_known_family_of_curves():
    fit = fit_joint(ladder(-0.25, -0.4, interaction=-0.1))
    assert fit.slopes == pytest.approx(
        {"width": -0.25, "tokens": -0.4, INTERACTION: -0.1}, abs=1e-6
    )
    assert fit.intercept == pytest.approx(TUNED + 0.3, abs=1e-6)
    assert fit.points == 8 and "batch" not in fit.slopes  # the points never vary the batch
    far = {"width": 4.0, "tokens": 1.0}  # the target: 16× wider, 2× the tokens
    assert fit.log2_at(far) == pytest.approx(TUNED + 0.3 - 1.0 - 0.4 - 0.4, abs=1e-6)


def test_without_rungs_at_a_second_width_the_width_x_tokens_term_is_not_fitted():
    fit = fit_joint(ladder(-0.25, -0.4, wide_rungs=False))
    assert set(fit.slopes) == {"width", "tokens"}
    assert fit.slopes == pytest.approx({"width": -0.25, "tokens": -0.4}, abs=1e-6)


def test_with_loss_noise_the_slopes_land_within_their_errors():
    hits = 0
    for seed in range(20):
        fit = fit_joint(ladder(-0.25, -0.4, noise=0.002, seed=seed))
        assert all(math.isfinite(e) and e > 0 for e in fit.stderr.values())
        hits += abs(fit.slopes["tokens"] + 0.4) <= 2 * fit.stderr["tokens"]
    assert hits >= 15  # ~95 % of two-sigma intervals cover the truth


def test_a_width_drift_beyond_its_error_is_flagged_and_mup_s_flat_optimum_is_not():
    drifting = [fit_joint(ladder(-0.5, -0.4, noise=0.002, seed=s)) for s in range(10)]
    flat = [fit_joint(ladder(0.0, -0.4, noise=0.002, seed=s)) for s in range(10)]
    assert all(f.beyond_error("width") for f in drifting)
    assert sum(f.beyond_error("width") for f in flat) <= 2


def test_a_slope_enters_a_prediction_only_as_far_as_it_is_measured():
    fit = JointFit(0.0, {"width": 0.5, "tokens": -0.4}, {"width": 0.5, "tokens": 0.04}, 7)
    assert fit.shrunk("width") == 0.0  # one standard error from zero: moves nothing
    assert fit.shrunk("tokens") == pytest.approx(-0.4 * (1 - 0.01))
    assert fit.shrunk("batch") == 0.0  # not fitted
    assert fit.shift({"width": 4.0, "tokens": 2.0}) == pytest.approx(2 * fit.shrunk("tokens"))


def test_a_term_in_width_is_read_no_wider_than_the_widths_it_was_measured_at():
    fit = fit_joint(ladder(-0.25, -0.4, interaction=-0.2))
    assert fit.width_reach == {"width": (0.0, 3.0), INTERACTION: (0.0, 1.0)}
    target = {"width": 4.0, "tokens": 1.0}  # a doubling past the widest width
    assert fit.shift(target) == pytest.approx(-0.25 * 3.0 - 0.4 - 0.2 * 1.0 * 1.0, abs=1e-4)
    assert fit.log2_at(target) - fit.intercept == pytest.approx(-1.0 - 0.4 - 0.8, abs=1e-6)
    inside = {"width": 0.5, "tokens": 2.0}  # within every term's widths: read as fitted
    assert fit.shift(inside) == pytest.approx(fit.log2_at(inside) - fit.intercept, abs=1e-4)


def test_too_few_points_leave_every_slope_unmeasured():
    points = [OptimumPoint({"width": 0.0}, -5.0), OptimumPoint({"width": 1.0}, -5.5)]
    fit = fit_joint(points)
    assert fit.slopes["width"] == pytest.approx(-0.5)
    assert fit.stderr["width"] == math.inf and fit.shrunk("width") == 0.0
    with pytest.raises(ValueError, match="finite optimum"):
        fit_joint([OptimumPoint({}, math.nan)])


def test_the_held_out_width_is_predicted_on_a_plane_and_missed_off_it():
    on_plane = ladder(-0.25, -0.4)
    assert held_out_error(on_plane) == pytest.approx((3.0, 0.0), abs=1e-6)
    bent = [
        p if p.coords["width"] < 3 else OptimumPoint(p.coords, p.log2_lr - 1.0) for p in on_plane
    ]
    assert held_out_error(bent) == pytest.approx((3.0, -1.0), abs=1e-6)
    two_widths = [p for p in on_plane if p.coords["width"] <= 1]
    assert all(math.isnan(v) for v in held_out_error(two_widths))


def test_optima_known_to_different_precision_weigh_accordingly():
    """Two sharp optima at the proxy's width and one vague one wider: the fit follows the sharp
    ones, and the width slope's error is the vague point's, since only it measures the width."""
    points = [
        OptimumPoint({"width": 0.0, "tokens": 0.0}, -5.0, stderr=0.05),
        OptimumPoint({"width": 0.0, "tokens": 1.0}, -5.4, stderr=0.05),
        OptimumPoint({"width": 2.0, "tokens": 0.0}, -4.0, stderr=1.0),
    ]
    fit = fit_joint(points)  # no degree of freedom left: the errors are the optima's own
    assert fit.slopes["tokens"] == pytest.approx(-0.4)
    assert fit.stderr["width"] == pytest.approx(math.hypot(1.0, 0.05) / 2)
    assert fit.shrunk("width") == 0.0  # a 0.5 slope from one vague point moves nothing
    scattered = [*points, OptimumPoint({"width": 2.0, "tokens": 1.0}, -2.0, stderr=0.05)]
    assert fit_joint(scattered).stderr["tokens"] > fit.stderr["tokens"]  # scatter widens it


def horizon_points(rng: np.random.Generator | None = None, sigma: float = 0.25):
    """A small ladder (widths 1×, 2×, 4× at the proxy's tokens) and horizon rungs (2×, 4× the
    tokens) at the two narrowest widths, on the plane η* = −2.7 − 0.17·t − 0.13·m·t, each
    optimum known to σ (and, given a generator, off the plane by that much)."""
    design = [(0, 0), (1, 0), (2, 0), (0, 1), (0, 2), (1, 1), (1, 2)]
    off = rng.standard_normal(len(design)) * sigma if rng is not None else np.zeros(len(design))
    return [
        OptimumPoint({"width": m, "tokens": t}, -2.7 - 0.17 * t - 0.13 * m * t + e, sigma)
        for (m, t), e in zip(design, off, strict=True)
    ]


TARGET = {"width": 5.0, "tokens": math.log2(30)}  # 32× the proxy's width, 30× its tokens


def test_the_horizon_shift_is_kept_where_its_two_terms_together_are_measured():
    """Each of the horizon's terms alone lies within about one error of zero (they are
    anticorrelated), so shrinking them apart moves the target by nothing; together, at the
    widths they were measured at, they resolve the shift, and it is kept."""
    fit = fit_joint(horizon_points())
    assert abs(fit.slopes["tokens"]) < 1.1 * fit.stderr["tokens"]
    assert abs(fit.slopes[INTERACTION]) < 1.1 * fit.stderr[INTERACTION]
    apart = (fit.shrunk("tokens") + fit.shrunk(INTERACTION) * 1.0) * TARGET["tokens"]  # e at m=1
    horizon = fit.parts(TARGET)["horizon"]
    assert horizon.fitted == pytest.approx(-0.30 * math.log2(30), abs=1e-6)  # e read at m = 1
    assert abs(apart) < 0.15 and horizon.shrunk < 0.75 * horizon.fitted < 0
    assert fit.shift(TARGET) == pytest.approx(sum(p.shrunk for p in fit.parts(TARGET).values()))


def test_a_shift_s_error_is_the_spread_of_its_fits_over_noisy_ladders():
    """The error a part reports is what the optima's noise makes of it: over many ladders drawn
    with each optimum off the plane by its σ, the horizon shifts fitted scatter by about the
    error the fits report."""
    rng = np.random.default_rng(0)
    fits = [fit_joint(horizon_points(rng)) for _ in range(400)]
    shifts = [f.parts(TARGET)["horizon"] for f in fits]
    spread = float(np.std([s.fitted for s in shifts]))
    reported = float(np.mean([s.stderr for s in shifts]))
    assert 0.85 < reported / spread < 1.35  # χ² > 1 only ever widens the error
    assert abs(np.mean([s.fitted for s in shifts]) + 0.30 * math.log2(30)) < 3 * spread / 20


def test_a_horizon_that_does_not_move_the_optimum_moves_nothing_most_of_the_time():
    rng = np.random.default_rng(1)
    design = [p.coords for p in horizon_points()]
    fits = [
        fit_joint([OptimumPoint(c, -2.7 + 0.25 * rng.standard_normal(), 0.25) for c in design])
        for _ in range(200)
    ]
    moved = [abs(f.parts(TARGET)["horizon"].shrunk) for f in fits]
    assert np.median(moved) == 0.0  # within one error of 0 in most ladders: carry-over
