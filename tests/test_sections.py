"""The summary's types: a value read back from JSON is checked against them, naming each
departure by its path. (That the pipeline's own summaries conform is checked where they are
made: `test_pipeline.py`, `test_custom_model.py`.)"""

import json
import math

from sweep.core.sections import (
    CoordVerdict,
    Summary,
    TargetComparison,
    TargetSection,
    TuneSection,
    mismatches,
)


def tune_section() -> dict:
    return {
        "best_params": {"lr": 0.01},
        "at_bound": {},
        "widened": [],
        "search": {"lr": {"low": 1e-4, "high": 0.1, "log": True}},
        "best_value": 2.5,
        "n_trials": 4,
        "n_complete": 3,
        "n_pruned": 1,
        "n_diverged": 0,
        "n_failed": 0,
    }


def test_a_conforming_section_has_no_mismatch_and_json_round_trips_keep_it_so():
    section = tune_section() | {"best_value": math.nan}  # a study with nothing complete
    assert mismatches(json.loads(json.dumps(section)), TuneSection) == []
    assert mismatches(section | {"near_best": {}}, TuneSection) == []  # optional, may be empty


def test_each_kind_of_departure_is_named_by_its_path():
    section = tune_section()
    del section["n_failed"]
    section["n_pruned"] = True  # a bool is not a count
    section["search"]["lr"]["low"] = "1e-4"
    section["widened"] = ["lr:high", 3]
    section["extra"] = 1
    found = mismatches(section, TuneSection, "tune")
    assert sorted(found) == sorted(
        [
            "tune.n_failed: missing",
            "tune.extra: not in the schema",
            "tune.n_pruned: True, not an integer",
            "tune.search.lr.low: '1e-4', not a number",
            "tune.widened[1]: 3, not str",
        ]
    )


def test_an_int_passes_for_a_float_and_null_only_where_allowed():
    verdict = {
        "worst_slope": 0,
        "module": "block0.mlp",
        "step": 0,
        "threshold": 0.4,
        "passes": True,
    }
    assert mismatches(verdict, CoordVerdict) == []
    assert mismatches(verdict | {"worst_slope": None}, CoordVerdict) == [
        "summary.worst_slope: None, not a number"
    ]


def test_a_target_section_with_both_runs_must_carry_the_speedup_and_only_then():
    run = {
        "final_val_loss": 2.0,
        "status": "completed",
        "val_curve": [[0, 5.5], [10, 2.0]],
        "flops": 10,
        "tokens_per_s": 1.0,
        "mfu": None,
        "devices": 1,
    }
    values = {"lr": 0.01}
    applied = {"hparams": values, "carried": values, "log2_lr_shift": 0.0, "rule": "carried"}
    base = {
        "width": 64,
        "n_layer": 2,
        "method": "cold",
        "source_width": None,
        "applied": applied,
        "cold": run,
    }
    speedup = {
        "target_loss": 2.0,
        "warm_steps": 5.0,
        "cold_steps": 10.0,
        "speedup": 2.0,
        "speedup_with_source": 1.5,
        "speedup_with_tuning": None,
        "reason": None,
    }
    assert mismatches(base, TargetSection | TargetComparison) == []
    assert mismatches(base | {"warm": run} | speedup, TargetSection | TargetComparison) == []
    partial = base | {"speedup": 2.0}  # a speedup without the figures it comes from
    assert mismatches(partial, TargetSection | TargetComparison)


def test_a_summary_lacking_its_closing_sections_is_told_so():
    summary = {
        "ladder": {"name": "toy", "widths": [32, 64], "proxy": 32, "target": 128},
        "model": {"kind": "gpt", "tunable": ["lr"]},
    }
    assert sorted(mismatches(summary, Summary)) == [
        "summary.cost: missing",
        "summary.cost_share: missing",
        "summary.cost_vs_target: missing",
        "summary.format: missing",
        "summary.hardware: missing",
        "summary.status: missing",
    ]
