"""The tuning study's own uncertainty: values at a bound of their range are found, the range is
widened once per bound, the budget grows with it, and the flat region near the best is measured.
On in-memory studies with known objectives (no training)."""

import math

import optuna
import pytest

from sweep.config import compose_config
from sweep.stages.tune import (
    at_bounds,
    make_sampler,
    near_best,
    search_space,
    suggest,
    trial_budget,
    widen_at_bounds,
    widened,
)

SPACE = {
    "lr": {"low": 1e-3, "high": 1e-1, "log": True},
    "alpha": {"low": 0.0, "high": 2.0, "log": False},
}


def make_cfg(*overrides):
    return compose_config(
        "+ladder=gpt_tiny",
        "ladder.search={lr: {low: 1.0e-3, high: 1.0e-1}, alpha_out: {low: 0.5, high: 4.0}}",
        *overrides,
    )


def study_with(cfg, objective, n_trials=12):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = search_space(cfg, study)
    study.optimize(lambda t: objective(suggest(t, {}, space)), n_trials=n_trials)
    return study


def test_a_value_at_a_bound_is_flagged_on_the_ranges_own_scale():
    assert at_bounds({"lr": 0.0985, "alpha": 1.0}, SPACE) == {"lr": "high"}
    assert at_bounds({"lr": 1.05e-3, "alpha": 0.02}, SPACE) == {"lr": "low", "alpha": "low"}
    assert at_bounds({"lr": 0.09, "alpha": 1.9}, SPACE) == {}  # 2.3% and 5% inside: not at it
    assert at_bounds({"other": 1.0}, SPACE) == {}


def test_widening_pushes_one_bound_out():
    assert widened(SPACE["lr"], "high") == {"low": 1e-3, "high": 0.4, "log": True}
    assert widened(SPACE["lr"], "low") == {"low": 2.5e-4, "high": 0.1, "log": True}
    assert widened(SPACE["alpha"], "high") == {"low": 0.0, "high": 4.0, "log": False}
    assert widened(SPACE["alpha"], "low")["low"] == 0.0  # a range that started >= 0 stays so


def enqueued_study(cfg, points: list[dict], objective) -> optuna.Study:
    """Trials at exactly these points; every searched value they leave out sits mid-range."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    middle = {n: math.sqrt(r["low"] * r["high"]) for n, r in search_space(cfg, study).items()}
    for params in points:
        study.enqueue_trial(middle | params)
    study.optimize(lambda t: objective(suggest(t, {}, search_space(cfg, t.study))), len(points))
    return study


def test_a_tuned_value_at_a_bound_widens_its_range_once_and_the_budget_grows():
    cfg = make_cfg("tune.n_trials=3", "tune.widen_trials=5")
    points = [{"lr": lr, "alpha_out": 1.0} for lr in (0.002, 0.02, 0.099)]
    study = enqueued_study(cfg, points, lambda hp: -math.log(hp["lr"]))  # best: the largest LR
    assert trial_budget(cfg, study) == 3
    assert widen_at_bounds(cfg, study) == ["lr:high"]
    assert search_space(cfg, study)["lr"] == {"low": 1e-3, "high": 0.4, "log": True}
    assert search_space(cfg, study)["alpha_out"]["high"] == 4.0  # the others as they were
    assert trial_budget(cfg, study) == 3 + 5
    assert widen_at_bounds(cfg, study) == []  # once per bound
    inside = enqueued_study(cfg, [{"lr": 0.02, "alpha_out": 1.0}], lambda hp: 0.0)
    assert widen_at_bounds(cfg, inside) == []  # nothing at a bound: nothing widened
    off = make_cfg("tune.widen_trials=0")
    assert widen_at_bounds(off, enqueued_study(off, points, lambda hp: -hp["lr"])) == []


def test_near_best_measures_how_flat_the_best_region_is():
    cfg = make_cfg()
    flat_in_alpha = study_with(cfg, lambda hp: (math.log2(hp["lr"]) + 5) ** 2, n_trials=60)
    spans = near_best(flat_in_alpha, band=0.5)["ranges"]
    lr_span = math.log2(spans["lr"][1] / spans["lr"][0])
    alpha_span = spans["alpha_out"][1] / spans["alpha_out"][0]
    assert lr_span < 1.5  # only LRs near 2^-5 are near the best
    assert alpha_span > 3  # alpha_out does not matter: near-best trials span its range
    assert near_best(flat_in_alpha, band=0.0)["trials"] == 1


def test_the_samplers_seed_is_the_experiments_unless_given():
    def first_draw(*overrides):
        cfg = make_cfg("tune.sampler=random", *overrides)
        study = optuna.create_study(sampler=make_sampler(cfg))
        return study.ask().suggest_float("x", 0, 1)

    assert first_draw("seed=7") == first_draw("seed=7", "tune.seed=7")
    assert first_draw("seed=7") != first_draw("seed=0")
    assert first_draw("seed=0", "tune.seed=3") == first_draw("seed=9", "tune.seed=3")


@pytest.mark.parametrize("value", [0.0985, 0.001])
def test_the_summary_flags_a_tuned_value_at_a_bound(value):
    from sweep.stages.tune import tune_summary

    cfg = make_cfg()
    study = enqueued_study(cfg, [{"lr": value, "alpha_out": 1.0}], lambda hp: hp["lr"])
    summary = tune_summary(cfg, study)
    assert summary["at_bound"] == {"lr": "high" if value > 0.01 else "low"}
