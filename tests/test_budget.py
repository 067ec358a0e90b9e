"""The budget's allocation on synthetic costs: required items kept whatever they cost, optional
ones in order while they fit, one size per group, and the refusal's numbers."""

import json

import pytest

from sweep.config import compose_config, resolve_vocabulary, run_config
from sweep.core.budget import Item, allocate, largest_fitting
from sweep.pipeline import Pipeline
from sweep.stages.budget import apply_budget
from sweep.stages.stage import target_run_flops


def test_required_items_kept_and_optional_ones_in_order_while_they_fit():
    items = [
        Item("tune", "proxy", 3.0, required=True),
        Item("transfer", "sp 8", 4.0),
        Item("transfer", "sp 16", 5.0, lost="no SP at 16"),
        Item("tune", "widen", 1.0),
    ]
    allocation = allocate(items, 8.5)
    assert [i.what for i in allocation.kept] == ["proxy", "sp 8", "widen"]
    assert [i.what for i in allocation.dropped] == ["sp 16"]
    assert allocation.fits and allocation.flops == 8.0 <= 8.5


def test_a_group_keeps_its_first_size_within_its_share_and_nothing_is_lost():
    items = [
        Item("tune", "proxy", 2.0, required=True),
        *(Item("axes", f"axes {c}", c, group="axes", share=0.5, keep={"b": c}) for c in (6, 3, 1)),
    ]
    allocation = allocate(items, 10.0)  # 8 left: the share allows 4, so size 3
    assert [i.what for i in allocation.kept] == ["proxy", "axes 3"]
    assert allocation.dropped == () and allocation.settings() == {"b": 3}
    none_fit = allocate(items, 2.5)
    assert [i.what for i in none_fit.dropped] == ["axes 1"]  # the smallest size, named once


def test_required_items_beyond_the_budget_do_not_fit():
    allocation = allocate([Item("tune", "proxy", 5.0, required=True)], 4.0)
    assert not allocation.fits and allocation.required_flops == 5.0
    assert largest_fitting(lambda n: 2 * n, 1, 10, 7.0) == 3
    assert largest_fitting(lambda n: 2 * n, 4, 10, 7.0) is None


def test_a_ladder_whose_checks_cannot_fit_is_refused_with_the_budget_that_would():
    cfg = compose_config("+ladder=gpt_small", "budget=0.1")
    resolve_vocabulary(cfg)
    with pytest.raises(ValueError, match=r"budget=0\.1 allows .* fits with budget=1\.8") as e:
        apply_budget(cfg)
    assert "\n" not in str(e.value)


def test_the_wide_ladder_fits_its_default_budget_and_drops_the_cold_baseline():
    cfg = compose_config("+ladder=gpt_wide")
    resolve_vocabulary(cfg)
    record = apply_budget(cfg)
    assert record["max_vs_target"] <= record["budget_vs_target"] == pytest.approx(0.1)
    assert record["max_flops"] <= 0.1 * target_run_flops(cfg)
    assert cfg.warmstart.baseline is False and str(cfg.verify.check) == "rung"
    # the widest rung: 4 runs of the target's length at width 32 (0.089) do not fit, 3 do (0.066)
    assert cfg.verify.width == 32 and record["check_width"] == 32 and cfg.verify.max_runs == 2
    assert record["check_steps"] == cfg.ladder.target_steps
    assert any("3 runs of its 6000 steps at width 32" in i["what"] for i in record["kept"])


def test_the_check_at_the_target_is_the_widest_rung_that_fits_else_probes():
    def allocated(*overrides, ladder="gpt_wide"):
        cfg = compose_config(f"+ladder={ladder}", *overrides)
        resolve_vocabulary(cfg)
        record = apply_budget(cfg)
        return str(cfg.verify.check), cfg.verify.width, record["check_steps"], cfg.verify.max_runs

    assert allocated("budget=0.2") == ("rung", 32, 6000, 3)  # now 4 runs at 32 fit
    assert allocated("verify.width=8") == ("rung", 8, 6000, 3)  # the user's width alone
    assert allocated("verify.check=probes") == ("probes", None, 94, 3)  # 1/64 of the target's
    # the narrowest rung (the proxy's width) is cheaper than probes of 1/128 of the target
    assert allocated("budget=0.025") == ("rung", 8, 6000, 3)
    # a target only twice its widest rung: a rung of its length costs more than short probes
    tiny = ["ladder.target_steps=400", "budget=0.3", "tune.n_trials=4", "tune.widen_trials=0",
            "ladder.lr_max_points=3", "ladder.noise_seeds=0", "verify.max_runs=2"]  # fmt: skip
    assert allocated(*tiny, ladder="gpt_tiny") == ("probes", None, 25, 2)


def test_the_plan_under_a_budget_is_what_then_runs(tmp_path):
    overrides = [
        f"out_root={tmp_path}",
        "+ladder=gpt_tiny",
        "ladder.target_steps=400",  # long enough for probes of at least 16 steps
        "budget=0.3",
        "tune.n_trials=4",
        "tune.n_startup_trials=2",
        "tune.widen_trials=0",
        "tune.pruner=none",
        "ladder.lr_max_points=3",
        "ladder.noise_seeds=0",
        "verify.max_runs=2",
        "launcher=debug",
        "logger=none",
    ]
    planned = Pipeline(compose_config(*overrides, "stages=[plan]")).run()
    budget = planned["budget"]
    dropped = [i["what"] for i in budget["dropped"]]
    assert dropped[:3] == [
        "the axes' rungs within 0.125 target runs",
        "the SP contrast at width 32",
        "the SP contrast at width 64",
    ]
    stages = {s["stage"]: s for s in planned["stages"]}
    assert stages["target"]["runs"] == 1  # the warm run alone: no cold baseline under a budget
    assert stages["verify"]["runs"] == 3 and "probes of 25 steps" in stages["verify"]["note"]
    summary = Pipeline(compose_config(*overrides)).run()
    assert summary["budget"]["kept"] == budget["kept"]
    assert summary["budget"]["dropped"] == budget["dropped"]
    assert "warm" in summary["target"] and "cold" not in summary["target"]
    assert "axes" not in summary  # dropped: nothing ran
    transfer = summary["transfer"]
    assert set(transfer["mup"]["curves"]) == {"32", "64"}
    assert not transfer["sp"]["curves"]  # no SP where it cannot pay
    verify = summary["verify"]
    assert verify["check"] == "probes" and verify["steps"] == 25
    assert stages["verify"]["runs"] <= verify["runs"] <= stages["verify"]["max_runs"]
    spent = summary["cost_vs_target"]["besides_target"]
    assert spent == pytest.approx(summary["budget"]["spent_vs_target"])
    assert spent <= planned["total"]["max_besides_target"] <= 0.3
    assert summary["budget"]["within"]


def test_a_rung_of_the_targets_length_checks_the_target_under_a_budget(tmp_path):
    overrides = [
        f"out_root={tmp_path}",
        "+ladder=gpt_tiny",
        "ladder.target=256",  # 4× the widest rung: a rung of the target's length fits the budget
        "ladder.target_steps=200",
        "budget=0.3",
        "axes.horizon=[]",
        "tune.n_trials=4",
        "tune.n_startup_trials=2",
        "tune.widen_trials=0",
        "tune.pruner=none",
        "ladder.lr_max_points=3",
        "ladder.noise_seeds=0",
        "verify.max_runs=2",
        "launcher=debug",
        "logger=none",
    ]
    planned = Pipeline(compose_config(*overrides, "stages=[plan]")).run()
    stages = {s["stage"]: s for s in planned["stages"]}
    assert "the target's 200 steps at width 64" in stages["verify"]["note"]
    summary = Pipeline(compose_config(*overrides)).run()
    verify = summary["verify"]
    assert verify["check"] == "rung" and verify["width"] == 64 and verify["steps"] == 200
    assert verify["verdict"]["text"].startswith("a rung of the target's length at width 64")
    cfg = compose_config(*overrides, "model.vocab_size=256")
    rung = run_config(cfg, 64, "mup", dict(cfg.ladder.hparams), 200, cfg.seed)
    records = sorted((tmp_path / "gpt_tiny" / "verify").glob("w64_k*.json"))
    assert len(records) == verify["runs"] >= 3
    for path in records:  # each run: the target's steps at the rung's width
        record = json.loads(path.read_text())
        assert record["steps"] == 200 and record["result"]["flops"] == rung.flops
    assert verify["flops_vs_target"] == pytest.approx(
        verify["runs"] * rung.flops / target_run_flops(cfg)
    )
    assert summary["budget"]["within"] and summary["budget"]["check_width"] == 64
