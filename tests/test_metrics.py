"""Transfer across a ladder: drift, noise, wider-is-better and the verdicts."""

import math

import numpy as np
import pytest

from sweep.core.lr_curve import fit_optimum
from sweep.core.metrics import (
    coord_verdict,
    difference_band,
    drift,
    drift_beyond_noise,
    pooled_std,
    run_verdict,
    transfer_verdict,
    wider_is_better,
)
from sweep.core.verdict import Status, Verdict

GRID = np.arange(-14.0, -5.5, 0.5)


def parabola(x, vertex, curvature=0.3, floor=3.0):
    return floor + curvature * (np.asarray(x) - vertex) ** 2


def test_drift_of_shifted_parabolas_equals_the_shift():
    optima = {
        w: fit_optimum(GRID, parabola(GRID, -10.2 + 0.7 * k)).log2_lr
        for k, w in enumerate([64, 128, 256, 512])
    }
    assert drift(optima) == pytest.approx(3 * 0.7, abs=1e-9)
    assert drift({64: -9.0}) == 0.0
    assert drift({64: -9.0, 128: math.nan, 256: -8.0}) == pytest.approx(1.0)
    assert math.isnan(drift({64: math.nan}))


def test_drift_beyond_noise_is_zero_when_one_lr_is_in_every_interval():
    assert drift_beyond_noise({64: (-6.0, -3.0), 128: (-5.0, -3.5), 256: (-4.0, -2.0)}) == 0.0
    assert drift_beyond_noise({64: (-6.0, -3.0), 128: (-5.0, -4.5), 256: (-4.0, -2.0)}) == 0.5
    assert drift_beyond_noise({64: (-6.0, -5.0), 128: (-4.0, -3.5)}) == pytest.approx(1.0)
    assert drift_beyond_noise({64: (-6.0, -5.0), 128: (math.nan, math.nan)}) == 0.0
    assert math.isnan(drift_beyond_noise({}))


def test_pooled_std_recovers_the_spread_of_repeated_measurements():
    rng = np.random.default_rng(0)
    groups = [list(m + 0.05 * rng.standard_normal(3)) for m in rng.uniform(2, 4, size=400)]
    std, dof = pooled_std(groups)
    assert dof == 800 and std == pytest.approx(0.05, rel=0.08)  # the group means do not count
    assert pooled_std([[3.0], [2.0, math.nan]]) == (pytest.approx(math.nan, nan_ok=True), 0)
    assert difference_band(0.05, 1) == pytest.approx(2 * 0.05 * math.sqrt(2))
    assert difference_band(math.nan, 1) == 0.0


def test_wider_is_better_compares_the_lrs_every_width_shares():
    curves = {
        "64": {-6.0: 4.0, -5.0: 3.5, -4.0: 3.6},
        "128": {-6.0: 3.9, -5.0: 3.41, -4.0: 3.61, -3.0: 9.0},  # -3 only here: not compared
        "256": {-5.0: 3.3, -4.0: math.nan},
    }
    assert wider_is_better(curves, tol=0.02)
    assert not wider_is_better(curves | {"256": {-5.0: 3.5}}, tol=0.02)
    assert wider_is_better(curves | {"256": {-5.0: 3.5}}, tol=0.2)


def test_wider_is_better_up_to_an_lr_leaves_the_cliff_above_it_out():
    curves = {32: {-5.0: 2.60, -4.0: 2.57, -3.0: 2.61}, 64: {-5.0: 2.50, -4.0: 2.46, -3.0: 3.0}}
    assert not wider_is_better(curves)  # at -3 the wider model is at the divergence cliff
    assert wider_is_better(curves, up_to=-4.0)
    assert not wider_is_better(curves, up_to=-6.0)  # nothing left to compare


def test_wider_is_better_needs_a_comparable_lr():
    assert not wider_is_better({64: {-5.0: 3.0, -4.0: math.nan}, 128: {-5.0: math.nan}})
    assert not wider_is_better({64: {-5.0: 3.0}, 128: {-4.0: 2.0}})
    assert not wider_is_better({64: {-5.0: 3.0}})


def test_transfer_verdict_rests_on_the_regret_at_the_tuned_lr():
    yes_ = transfer_verdict({32: 0.0, 64: 0.001, 128: 0.003}, {32: 0.0, 64: 0.01, 128: math.inf})
    yes = yes_.text
    assert yes_.status is Status.passes
    assert yes.startswith("µP transfers: worst regret 0.30% at width 128")
    assert "SP diverges at the tuned LR at width 128" in yes
    no_ = transfer_verdict({32: 0.0, 64: 0.012}, {32: 0.0, 64: 0.03}, noise=0.004)
    no = no_.text
    assert no_.status is Status.fails
    assert no.startswith("µP does not transfer: it loses 1.20% at width 64")
    assert "noise ±0.40%" in no
    both = transfer_verdict({32: 0.0, 64: 0.002}, {32: 0.0, 64: 0.004}).text
    assert both.startswith("µP transfers") and "does not separate" in both
    assert "\n" not in yes + no + both


def test_a_tuned_lr_off_optima_that_agree_is_named_as_what_fails():
    # the widths' optima agree (log2 -2.7 to -2.5 lies in every interval); the tuned LR sits
    # 0.8 log2 below them and loses more the wider the width: the tuned LR fails, not µP
    regrets, sp = {8: 0.003, 16: 0.011, 32: 0.021}, {8: 0.0, 16: 0.02}
    agree = {8: (-3.2, -2.2), 16: (-3.0, -2.5), 32: (-2.7, -2.4)}
    line = transfer_verdict(regrets, sp, noise=0.01, optima=agree, tuned_log2_lr=-3.5)
    assert line.status is Status.fails
    assert line.text.startswith("the tuned LR does not transfer: it loses 2.10% at width 32")
    text = line.text
    assert "µP's optimum does: every width's optimum interval holds log2 -2.70 to -2.50" in text
    assert "lies 0.80 log2 below them" in text
    apart = {8: (-3.2, -2.9), 16: (-3.0, -2.5), 32: (-2.7, -2.4)}  # 8 and 32 share no LR
    assert transfer_verdict(
        regrets, sp, noise=0.01, optima=apart, tuned_log2_lr=-3.5
    ).text.startswith("µP does not transfer")
    inside = transfer_verdict(regrets, sp, noise=0.01, optima=agree, tuned_log2_lr=-2.6)
    assert inside.text.startswith("µP does not transfer")  # the tuned LR is on the optimum


def test_a_regret_within_the_noise_is_no_failure():
    small = transfer_verdict({32: 0.0, 64: 0.001}, {64: 0.012}, noise=0.015, tolerance=0.005)
    assert small.status is Status.passes
    assert small.text.endswith("SP is within the noise too, so this ladder does not separate them")
    noisy = transfer_verdict({32: 0.0, 64: 0.012}, {64: 0.05}, noise=0.015, tolerance=0.005)
    line = noisy.text
    assert noisy.status is Status.within_noise
    assert line.startswith("µP transfers within the noise: worst regret 1.20% at width 64")
    assert "within the noise ±1.50%" in line and "SP loses 5.00% at width 64" in line


def test_an_unbracketed_optimum_makes_the_verdict_inconclusive():
    open_ = transfer_verdict({32: 0.0, 64: 0.0}, {32: 0.0, 64: 0.5}, unbracketed=["SP width 64"])
    assert open_.status is Status.inconclusive
    assert open_.text.startswith("inconclusive") and "SP width 64" in open_.text
    nothing = transfer_verdict({32: math.nan}, {})
    assert nothing.status is Status.inconclusive and nothing.text.startswith("inconclusive")


def test_run_verdict_joins_the_checks_and_leads_with_a_failing_coordinate_check():
    failing = {"passes": False, "worst_slope": 0.6, "threshold": 0.25, "module": "m", "step": 2}
    transfers = Verdict(Status.passes, "µP transfers: x")
    noisy = Verdict(Status.within_noise, "at the target: y")
    verdict = run_verdict(transfers, failing, noisy)
    assert verdict.status is Status.fails  # the worst of its parts
    line = verdict.text
    assert line.startswith("the µP coordinate check FAILS (worst slope 0.60 > 0.25 at m, step 2)")
    assert line.endswith("µP transfers: x; at the target: y")
    assert run_verdict(transfers, failing | {"passes": True}) == transfers
    assert run_verdict(transfers, None, noisy).status is Status.within_noise
    unsure = Verdict(Status.inconclusive, "at the target: inconclusive")
    assert run_verdict(transfers, None, unsure).status is Status.inconclusive
    assert run_verdict(None, None) is None


def test_a_coordinate_check_reads_as_a_verdict_with_its_bound():
    check = {"worst_slope": 0.0512, "module": "block0.mlp", "step": 3, "threshold": 0.25}
    assert coord_verdict(check | {"passes": True}) == Verdict(
        Status.passes, "worst slope 0.05 at block0.mlp, step 3 (≤ 0.25)"
    )
    failing = coord_verdict(check | {"worst_slope": 0.91, "passes": False})
    assert failing == Verdict(Status.fails, "worst slope 0.91 at block0.mlp, step 3 (> 0.25)")
