"""The rules beside width: hand-computed values, a known power law recovered from a synthetic
ladder, and the AdamW timescale held where the rule says."""

import math

import numpy as np
import pytest

from sweep.core.axis_rules import (
    Setting,
    adamw_timescale,
    batch_lr,
    carry,
    fit_power_law,
    horizon_lr,
    weight_decay_for,
)


def test_the_length_rule_by_hand():
    assert horizon_lr(0.01, 1000, 4000, beta=0.5) == pytest.approx(0.005)  # 4^-0.5
    assert horizon_lr(0.01, 1000, 8000, beta=1 / 3) == pytest.approx(0.005)  # 8^-1/3
    assert horizon_lr(0.01, 1000, 1000, beta=0.7) == 0.01
    assert horizon_lr(0.01, 1000, 250, beta=0.5) == pytest.approx(0.02)  # shorter: higher


def test_the_square_root_batch_rule_by_hand():
    assert batch_lr(0.01, 16, 64) == pytest.approx(0.02)  # sqrt(4)
    assert batch_lr(0.01, 16, 64, kappa=1.0) == pytest.approx(0.04)  # the linear (SGD) rule
    assert batch_lr(0.01, 64, 16) == pytest.approx(0.005)


def test_the_adamw_timescale_by_hand():
    # B = 1024 tokens, η = 0.01, λ = 0.1, D = 1,024,000 tokens: 1/(ηλ) = 1000 steps of 1000
    tau = adamw_timescale(batch=1024, lr=0.01, weight_decay=0.1, tokens=1_024_000)
    assert tau == pytest.approx(1.0)
    assert weight_decay_for(tau, 1024, 0.01, 1_024_000) == pytest.approx(0.1)
    assert adamw_timescale(1024, 0.01, 0.0, 1e6) == math.inf
    assert weight_decay_for(math.inf, 1024, 0.01, 1e6) == 0.0  # no weight decay carries as none


def test_carrying_along_length_and_batch_keeps_the_timescale_and_applies_both_rules():
    proxy, target = Setting(batch_tokens=1024, steps=100), Setting(batch_tokens=4096, steps=200)
    lr, wd = carry(0.01, 0.1, proxy, target, beta=0.5)
    # tokens × 8: η · 8^-0.5; batch × 4: · 4^0.5
    assert lr == pytest.approx(0.01 * 8**-0.5 * 2)
    tau_proxy = adamw_timescale(1024, 0.01, 0.1, proxy.tokens)
    assert adamw_timescale(4096, lr, wd, target.tokens) == pytest.approx(tau_proxy)
    # holding λ fixed instead would change the timescale by the factor the rule undoes
    assert adamw_timescale(4096, lr, 0.1, target.tokens) != pytest.approx(tau_proxy)
    assert carry(0.01, 0.1, proxy, proxy, beta=0.5) == pytest.approx((0.01, 0.1))


def test_a_synthetic_ladder_with_a_known_power_law_is_recovered():
    rng = np.random.default_rng(0)
    beta, log2_c = 0.35, -3.0
    tokens = [1e5 * 2**k for k in range(5)]
    noisy = [log2_c - beta * math.log2(d) + rng.normal(0, 0.05) for d in tokens]
    fit = fit_power_law(tokens, noisy)
    assert fit.points == 5 and 0 < fit.stderr < 0.05
    assert abs(fit.exponent - beta) < 3 * fit.stderr  # within its own error bar
    exact = fit_power_law(tokens, [log2_c - beta * math.log2(d) for d in tokens])
    assert exact.exponent == pytest.approx(beta) and exact.stderr == pytest.approx(0, abs=1e-9)
    assert exact.log2_at(tokens[2]) == pytest.approx(log2_c - beta * math.log2(tokens[2]))


def test_a_power_law_needs_two_rungs_and_leaves_out_unfitted_ones():
    with pytest.raises(ValueError, match="two distinct rungs"):
        fit_power_law([1e5, 2e5], [-3.0, math.nan])
    two = fit_power_law([1e5, 4e5, 8e5], [-3.0, -4.0, math.nan])
    assert two.points == 2 and two.exponent == pytest.approx(0.5) and two.stderr == math.inf


@pytest.mark.parametrize("bad", [0, -1.0, math.nan])
def test_rules_refuse_non_positive_inputs(bad):
    with pytest.raises(ValueError):
        horizon_lr(0.01, bad, 1000, 0.5)
    with pytest.raises(ValueError):
        batch_lr(bad, 16, 32)
    with pytest.raises(ValueError):
        adamw_timescale(1024, 0.01, 0.1, bad)
