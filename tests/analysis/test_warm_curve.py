"""`python -m analysis.warm_curve` and `analysis.warm_schedules`: the plan of runs (every short
run branches where its own WSD decay starts, from a snapshot the long run keeps) and the
speedups read off synthetic results whose answer is known."""

import pytest

from analysis import warm_curve, warm_schedules
from sweep.core.train import OptimConfig, lr_factor


def test_every_short_run_branches_where_its_decay_starts_from_a_kept_snapshot():
    long_runs, branches = warm_curve.plan(1000, [0, 1], decay_fraction=0.2)
    assert {r["name"] for r in long_runs} == {
        "cold_L1000_s0",
        "warm_L1000_s0",
        "cold_L1000_s1",
        "warm_L1000_s1",
    }
    wsd = OptimConfig(warmup_steps=10, schedule="wsd", decay_fraction=0.2)
    for run in branches:
        long = next(r for r in long_runs if (r["kind"], r["seed"]) == (run["kind"], run["seed"]))
        assert run["branch"] in long["snapshots"] and run["steps"] < 1000
        # the schedules agree before the branch and the short run decays from there on
        assert all(
            lr_factor(t, wsd, 1000) == lr_factor(t, wsd, run["steps"]) for t in range(run["branch"])
        )
        assert lr_factor(run["branch"], wsd, run["steps"]) == 1.0
        assert lr_factor(run["branch"] + 1, wsd, run["steps"]) < 1.0
    cold = sorted(r["steps"] for r in branches if r["kind"] == "cold" and r["seed"] == 0)
    assert cold == [300, 600]


def record(kind: str, seed: int, steps: int, loss: float) -> dict:
    result = {
        "status": "completed",
        "reason": "",
        "steps_done": steps,
        "train_loss": [],
        "val_loss": [[0, 5.0], [steps, loss]],
        "tokens": 0,
        "flops": 0,
        "resumed_from": 0,
        "tokens_per_s": 1.0,
        "mfu": None,
        "devices": 1,
    }
    return {
        "kind": kind,
        "seed": seed,
        "result": result,
        "flops_per_step": 10.0,
        "warmstart": {"source_flops": 500.0},
    }


def test_the_curve_reads_the_warm_length_that_reaches_each_cold_loss():
    warm = {100: 2.3, 150: 2.1, 200: 1.9, 300: 1.8}
    cold = {300: 2.0, 600: 1.85}
    records = {f"warm{k}": record("warm", 0, k, v) for k, v in warm.items()}
    records |= {f"cold{k}": record("cold", 0, k, v) for k, v in cold.items()}
    summary = warm_curve.summarize(records, [0], tokens_per_param=0.5)
    at300, at600 = summary["curve"][300], summary["curve"][600]
    assert at300["warm_steps"]["mean"] == pytest.approx(175)  # halfway from 2.1 to 1.9
    assert at300["speedup"]["mean"] == pytest.approx(300 / 175)
    assert at300["speedup_with_source"]["mean"] == pytest.approx(300 / (175 + 50))
    assert at600["warm_steps"]["mean"] == pytest.approx(250)
    assert at300["tokens_per_param"] == 150 and not at300["bound"]


def test_a_warm_curve_already_below_the_cold_loss_is_a_bound_and_one_never_there_is_none():
    records = {
        "w": record("warm", 0, 100, 1.5),
        "w2": record("warm", 0, 200, 1.4),
        "c": record("cold", 0, 300, 2.0),
        "c2": record("cold", 0, 600, 1.0),
    }
    curve = warm_curve.summarize(records, [0], tokens_per_param=1.0)["curve"]
    assert curve[300]["bound"] and curve[300]["speedup"]["mean"] == 3.0
    assert curve[600]["speedup"]["mean"] is None


def test_a_schedule_variant_is_charged_its_stages_and_optionally_its_source():
    cold = record("cold", 0, 300, 2.0)
    warm = record("warm", 0, 300, 1.8)
    warm["result"]["val_loss"] = [[0, 2.4], [100, 2.2], [200, 2.0], [300, 1.8]]
    warm["warmstart"] = {"source_flops": 400.0, "stage_flops": 100.0}
    row = warm_schedules.compare(warm, cold, tune_flops=1000.0)
    assert row["steps_to_cold_final"] == 200
    assert row["speedup"] == pytest.approx(1.5)
    assert row["speedup_flops"] == pytest.approx(300 / (200 + 10))  # the stages: 10 steps' FLOPs
    assert row["speedup_with_source"] == pytest.approx(300 / (200 + 50))
    assert row["speedup_with_tuning"] == pytest.approx(300 / (200 + 10 + 100))
