"""The axes stage beside width: on a synthetic ladder whose LR optimum follows a known power law
in tokens (and whose weight-decay optimum keeps a known AdamW timescale) the check grows its
grids until bracketed, recovers the law, and finds the rules better than plain carry-over; a
budget leaves out the dearest rungs before any job; and a real run on the smallest ladder."""

import math

import pytest

from sweep.config import compose_config, proxy_setting, resolve_vocabulary
from sweep.core.axis_rules import adamw_timescale, weight_decay_for
from sweep.core.joint_fit import INTERACTION
from sweep.stages import axes

BETA = 0.4


def tiny(tmp_path, *overrides: str):
    """gpt_tiny, its vocabulary resolved as the driver resolves it (the tests drive the stage's
    functions directly)."""
    cfg = compose_config(
        f"out_root={tmp_path}", "+ladder=gpt_tiny", "logger=none", "axes.budget=100", *overrides
    )
    resolve_vocabulary(cfg)
    return cfg


def synthetic(
    cfg, tuned: dict, beta: float = BETA, wd_curvature: float = 0.0, width_slope: float = 0.0
):
    """loss(run): a parabola in log2 LR around η*(D, m) = tuned · (D/D_proxy)^-β · m^width_slope
    (m the run's width over the proxy's), plus one in log2 λ around the λ of the proxy's AdamW
    timescale at the run's LR."""
    proxy = proxy_setting(cfg)
    tau = (
        adamw_timescale(proxy.batch_tokens, tuned["lr"], tuned["weight_decay"], proxy.tokens)
        if tuned["weight_decay"] > 0
        else math.inf
    )

    def loss(run: axes.AxisRun) -> float:
        config = axes.rung_run(cfg, tuned, run)
        tokens = config.steps * config.tokens_per_step
        best = math.log2(tuned["lr"]) - beta * math.log2(tokens / proxy.tokens)
        best += width_slope * math.log2((run.width or cfg.ladder.widths[0]) / cfg.ladder.widths[0])
        value = 3.0 + 0.05 * (math.log2(config.optim.lr) - best) ** 2
        if wd_curvature and math.isfinite(tau):
            ideal = weight_decay_for(tau, config.tokens_per_step, config.optim.lr, tokens)
            value += wd_curvature * (math.log2(config.optim.weight_decay) - math.log2(ideal)) ** 2
        return value

    return loss


def run_check(cfg, tuned: dict, loss) -> dict:
    results: dict = {}
    for _ in range(50):
        todo = axes.next_runs(cfg, tuned, results)
        if not todo:
            break
        results |= {run: loss(run) for run in todo}
    assert not axes.next_runs(cfg, tuned, results)
    return results


def test_a_known_power_law_in_tokens_is_recovered_and_the_rule_beats_carry_over(tmp_path):
    cfg = tiny(tmp_path, "axes.horizon=[2,4,8]")
    tuned = dict(cfg.ladder.hparams) | {"lr": 0.01}
    results = run_check(cfg, tuned, synthetic(cfg, tuned))
    summary = axes.axes_summary(cfg, tuned, results)
    horizon = summary["horizon"]
    assert horizon["rungs"] == [1.0, 2.0, 4.0, 8.0] and all(horizon["bracketed"].values())
    assert horizon["beta"] == pytest.approx(BETA, abs=1e-6)
    assert horizon["beta_from"] == "fitted on 4 rungs ± 0.00"
    assert horizon["drift_without_rule"] == pytest.approx(3 * BETA, abs=1e-6)  # 8× the tokens
    assert horizon["drift_with_rule"] == pytest.approx(0, abs=1e-6)
    for rung in ("2", "4", "8"):  # both read off the fitted parabola: exact here
        assert horizon["regret_rule"][rung] == pytest.approx(0, abs=1e-9)
        excess = 0.05 * (BETA * math.log2(float(rung))) ** 2  # the carried LR's, by hand
        assert horizon["regret_carry"][rung] == pytest.approx(excess / 3.0)
    assert horizon["held_out"]["beta"] == pytest.approx(BETA, abs=1e-6)
    prediction = summary["prediction"]  # gpt_tiny's target: 40 steps against the proxy's 30
    assert prediction["log2_shift_vs_carry"] == pytest.approx(-BETA * math.log2(40 / 30), abs=1e-6)
    assert "weight_decay" not in horizon  # no weight decay tuned: nothing to carry


def test_a_given_beta_is_used_as_given(tmp_path):
    cfg = tiny(tmp_path, "axes.horizon=[2]", "axes.beta=0.25")
    tuned = dict(cfg.ladder.hparams) | {"lr": 0.01}
    results = run_check(cfg, tuned, synthetic(cfg, tuned))
    horizon = axes.axes_summary(cfg, tuned, results)["horizon"]
    assert (horizon["beta"], horizon["beta_from"]) == (0.25, "given")
    assert horizon["rule_log2_lr"]["2"] == pytest.approx(math.log2(0.01) - 0.25)


def test_weight_decay_at_a_fixed_timescale_beats_a_fixed_weight_decay(tmp_path):
    cfg = tiny(tmp_path, "axes.horizon=[4]")
    tuned = dict(cfg.ladder.hparams) | {"lr": 0.01, "weight_decay": 0.1}
    results = run_check(cfg, tuned, synthetic(cfg, tuned, wd_curvature=0.02))
    wd = axes.axes_summary(cfg, tuned, results)["horizon"]["weight_decay"]
    assert wd["regret_timescale"]["4"] == pytest.approx(0, abs=1e-9)
    assert wd["regret_fixed"]["4"] > 1e-3
    # the λ grid sits at the rung's best grid LR, 2× below the tuned one (its optimum is
    # 4^-0.4 below); at 4× the tokens the timescale then asks λ × 2 / 4
    assert wd["timescale_log2_wd"]["4"] == pytest.approx(math.log2(0.1) + 1 - 2, abs=1e-6)
    assert wd["optimum_log2_wd"]["4"] == pytest.approx(wd["timescale_log2_wd"]["4"], abs=1e-6)


def test_the_batch_axis_applies_the_square_root_rule_at_the_same_tokens(tmp_path):
    cfg = tiny(tmp_path, "axes.horizon=[]", "axes.batch=[2]")
    tuned = dict(cfg.ladder.hparams) | {"lr": 0.01}
    run = axes.rung_run(cfg, tuned, axes.AxisRun("batch", 2.0, 0, None, 0))
    assert run.batch_size == 2 * cfg.ladder.batch_size and run.steps * 2 == cfg.ladder.tune_steps
    rules = axes.rule_log2_lrs(cfg, tuned, {}, "batch")
    assert rules[2.0] == pytest.approx(math.log2(0.01) + 0.5)


def test_a_budget_leaves_out_the_dearest_rungs_but_never_the_proxy(tmp_path):
    cfg = tiny(tmp_path, "axes.horizon=[2,4,8]", "axes.budget=0.5")
    kept = axes.kept_rungs(cfg)["horizon"]
    assert kept[0] == 1.0 and 8.0 not in kept
    assert kept == sorted(kept) and len(kept) < 4
    assert axes.kept_rungs(tiny(tmp_path, "axes.horizon=[2,4,8]", "axes.budget=0"))["horizon"] == [
        1.0
    ]
    assert axes.rungs(tiny(tmp_path, "axes.horizon=[]"), "horizon") == []


@pytest.mark.parametrize(
    "override, message",
    [
        ("axes.horizon=[0]", "multiple > 0"),
        ("axes.batch=[4]", "whole steps"),
        ("axes.beta=-0.1", "axes.beta"),
        ("axes.budget=-1", "axes.budget"),
    ],
)
def test_bad_rungs_are_one_line_before_any_job(tmp_path, override, message):
    from sweep.config import validate

    with pytest.raises(ValueError, match=message):
        validate(tiny(tmp_path, override))


def test_the_horizon_check_on_the_smallest_ladder_end_to_end(tmp_path):
    from sweep.pipeline import Pipeline

    cfg = tiny(
        tmp_path,
        "launcher=debug",
        "stages=[tune,axes]",
        "tune.n_trials=3",
        "tune.n_startup_trials=2",
        "tune.widen_trials=0",
        "axes.horizon=[4]",
        "ladder.lr_max_points=4",
    )
    summary = Pipeline(cfg).run()
    horizon = summary["axes"]["horizon"]
    assert horizon["rungs"] == [1.0, 4.0]
    assert all(math.isfinite(v) for v in horizon["optimum_log2_lr"].values())
    assert horizon["beta_from"] == "fitted on 2 rungs" and math.isfinite(horizon["beta"])
    assert summary["cost"]["axes_flops"] > 0
    assert len(list((tmp_path / "gpt_tiny" / "axes").glob("horizon_x4_*.json"))) >= 3


def verify_records(optimum: float) -> dict:
    """Three cold target runs at log2 LR −1, 0, +1 on a parabola around `optimum`."""

    def record(x: float) -> dict:
        loss = 2.0 + 0.1 * (x - optimum) ** 2
        result = {
            "status": "completed",
            "reason": "",
            "steps_done": 10,
            "train_loss": [],
            "val_loss": [[10, loss]],
            "tokens": 0,
            "flops": 1,
            "resumed_from": 0,
            "tokens_per_s": 1.0,
            "mfu": None,
            "devices": 1,
        }
        return {"log2_lr": x, "result": result}

    return {k: record(float(k)) for k in (-1, 0, 1)}


@pytest.mark.parametrize("band", [0.0, 0.01])
def test_verify_centres_on_the_applied_lr_and_judges_every_candidate_with_its_interval(band):
    from sweep.stages.verify import verify_summary

    records = verify_records(optimum=-0.4)  # the curve, centred on the applied LR (log2 0)
    candidates = {"applied": 0.0, "carried": 0.3, "unshrunk": -0.4, "one_axis": 0.0}
    summary = verify_summary(records, candidates, band, 1.0, 0.005)
    judged = summary["judged"]
    assert summary["applied_log2_lr"] == 0.0
    assert summary["regret"] == 0.0  # the applied LR is the grid's best point
    assert judged["applied"]["regret"] == pytest.approx(0.1 * 0.16 / 2.0)  # against the vertex
    assert judged["carried"]["regret"] == pytest.approx(0.1 * 0.7**2 / 2.0)
    assert judged["unshrunk"]["regret"] == pytest.approx(0, abs=1e-12)
    assert "one_axis" not in judged  # the same LR as the applied one: nothing more to say
    for figures in judged.values():
        assert figures["interval"] == pytest.approx(
            [max(0.0, figures["regret"] - band), figures["regret"] + band]
        )
    text = summary["verdict"]["text"]
    assert "the applied LR (log2 0.00) 0.80%" in text and "the tuned LR carried over" in text


def transfer_section(tuned_log2: float, optima: dict[int, float], band: float) -> dict:
    """The part of a transfer section the joint fit reads: µP's optimum and interval per width."""
    return {
        "noise": {"band": band},
        "mup": {
            "optimum_log2_lr": {str(w): v for w, v in optima.items()},
            "optimum_interval": {str(w): [v - 0.1, v + 0.1] for w, v in optima.items()},
            "bracketed": {str(w): True for w in optima},
        },
        "tuned_log2_lr": tuned_log2,
    }


@pytest.mark.parametrize("width_slope", [0.0, -1.0])
def test_the_joint_fit_reads_width_from_the_transfer_check_and_tokens_from_the_rungs(
    tmp_path, width_slope
):
    cfg = tiny(
        tmp_path, "axes.horizon=[2,4,8]", "ladder.widths=[32,64,128,256]", "ladder.target=512"
    )
    tuned = dict(cfg.ladder.hparams) | {"lr": 0.01}
    tuned_log2 = math.log2(tuned["lr"])
    results = run_check(cfg, tuned, synthetic(cfg, tuned, width_slope=width_slope))
    assert {run.width for run in results} == {None, 64}  # the horizon at a second width too
    optima = {w: tuned_log2 + width_slope * math.log2(w / 32) for w in cfg.ladder.widths}
    transfer = transfer_section(tuned_log2, optima, band=0.002)
    section = axes.axes_summary(cfg, tuned, results, transfer)
    assert sorted(section["horizon"]["widths"]["64"]["curves"]) == ["2", "4", "8"]
    joint = section["joint"]
    # every width, every rung at the proxy (its own rung too) and the rungs at width 64 (whose
    # rung 1 is the transfer check's curve there)
    assert joint["points"] == 4 + 4 + 3
    assert joint["slopes"][INTERACTION] == pytest.approx(0.0, abs=1e-6)
    assert joint["slopes"]["tokens"] == pytest.approx(-BETA, abs=1e-6)
    assert joint["slopes"]["width"] == pytest.approx(width_slope, abs=1e-6)
    assert joint["width_drift"] == (width_slope != 0)
    assert joint["held_out_width"]["error_log2"] == pytest.approx(0, abs=1e-6)  # a plane
    tokens = math.log2(40 / 30)  # gpt_tiny's target trains 40 steps, the proxy 30
    # the width terms read no wider than they were measured: width 256 (log2 3), and width 64
    # (log2 1) for the horizon's rungs
    parts = joint["shifts"]
    horizon = joint["slopes"]["tokens"] * tokens + joint["slopes"][INTERACTION] * tokens * 1.0
    assert parts["horizon"]["fitted"] == pytest.approx(horizon)
    assert parts["width"]["fitted"] == pytest.approx(joint["slopes"]["width"] * 3.0)
    expected = parts["horizon"]["shrunk"] + parts["width"]["shrunk"]
    assert joint["log2_shift_vs_carry"] == pytest.approx(expected)
    assert joint["log2_lr"] == pytest.approx(tuned_log2 + expected)
    assert parts["horizon"]["shrunk"] == pytest.approx(-BETA * tokens, rel=0.05)  # measured: kept
    assert parts["width"]["shrunk"] == pytest.approx(width_slope * 3.0, rel=0.05, abs=1e-9)
    assert "joint" not in axes.axes_summary(cfg, tuned, {}, None)  # nothing measured
