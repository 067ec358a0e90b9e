"""The values the target trains at: the tuned ones moved only by what the axes stage resolved."""

import math

import pytest

from sweep.config import compose_config, proxy_setting, target_setting
from sweep.core.axis_rules import adamw_timescale, weight_decay_for
from sweep.stages.applied import applied_values
from sweep.stages.stage import hparams_tag

TUNED = {"lr": 0.01, "init_std": 1.0, "weight_decay": 0.1}


def cfg(*overrides):
    return compose_config("+ladder=gpt_tiny", *overrides)


def axes_section(shift: float, regret_fixed: float | None = None, regret_timescale: float = 0.0):
    """The part of an axes section the applied values read: the joint fit's shrunk shift, and
    (optionally) a horizon rung's weight-decay regrets."""
    horizon = {}
    if regret_fixed is not None:
        horizon["weight_decay"] = {
            "regret_fixed": {"2": regret_fixed},
            "regret_timescale": {"2": regret_timescale},
        }
    return {"horizon": horizon, "joint": {"log2_shift_vs_carry": shift}}


def test_the_joint_fits_shift_moves_the_lr_and_the_carried_values_stay_beside():
    applied = applied_values(cfg(), TUNED, axes_section(-0.5))
    assert applied["hparams"]["lr"] == pytest.approx(0.01 * 2**-0.5)
    assert applied["log2_lr_shift"] == pytest.approx(-0.5)
    assert applied["carried"] == TUNED and applied["hparams"]["init_std"] == 1.0
    assert applied["hparams"]["weight_decay"] == 0.1  # no λ grid measured: λ stays
    assert "joint fit" in applied["rule"]


def test_no_shift_leaves_the_tuned_values_exactly_so_every_run_made_with_them_is_reused():
    applied = applied_values(cfg(), TUNED, axes_section(0.0))
    assert applied["hparams"] == TUNED and hparams_tag(applied["hparams"]) == hparams_tag(TUNED)
    assert "carried over" in applied["rule"]


@pytest.mark.parametrize(
    "overrides, axes, why",
    [
        (["axes.apply=false"], axes_section(-0.5), "axes.apply=false"),
        ([], None, "no LR optimum was fitted"),
        ([], {"prediction": {}}, "no LR optimum was fitted"),
    ],
)
def test_plain_carry_over_when_asked_or_when_nothing_was_fitted(overrides, axes, why):
    applied = applied_values(cfg(*overrides), TUNED, axes)
    assert applied["hparams"] == TUNED == applied["carried"] and applied["log2_lr_shift"] == 0.0
    assert why in applied["rule"]


def test_weight_decay_follows_the_adamw_timescale_only_where_it_beat_a_fixed_one():
    config = cfg()
    proxy, target = proxy_setting(config), target_setting(config)
    tau = adamw_timescale(proxy.batch_tokens, TUNED["lr"], TUNED["weight_decay"], proxy.tokens)
    lr = 0.01 * 2**-0.5
    better = applied_values(config, TUNED, axes_section(-0.5, regret_fixed=0.02))
    expected = weight_decay_for(tau, target.batch_tokens, lr, target.tokens)
    assert better["hparams"]["weight_decay"] == pytest.approx(expected)
    assert better["hparams"]["weight_decay"] != TUNED["weight_decay"]  # the target is longer
    assert "timescale" in better["rule"]
    worse = applied_values(config, TUNED, axes_section(-0.5, 0.01, regret_timescale=0.03))
    assert worse["hparams"]["weight_decay"] == TUNED["weight_decay"]
    without = applied_values(config, TUNED | {"weight_decay": 0.0}, axes_section(-0.5, 0.02))
    assert without["hparams"]["weight_decay"] == 0.0


def test_the_joint_fit_shrinks_a_slope_within_its_error_to_carry_over():
    """A noise-level slope moves nothing: the shift is the shrunk one (methods §11)."""
    from sweep.core.joint_fit import OptimumPoint, fit_joint

    noisy = [OptimumPoint({"tokens": t}, -6.0 + e, 0.5) for t, e in [(0, 0.1), (1, -0.2), (2, 0.1)]]
    fit = fit_joint(noisy)
    assert abs(fit.slopes["tokens"]) < fit.stderr["tokens"] and fit.shrunk("tokens") == 0.0
    applied = applied_values(cfg(), TUNED, axes_section(fit.shift({"tokens": 2.0})))
    assert applied["hparams"]["lr"] == TUNED["lr"] and math.isclose(applied["log2_lr_shift"], 0)
