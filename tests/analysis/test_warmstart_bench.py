"""`python -m analysis.warmstart`: the plan of runs, and (slow) the whole benchmark on gpt_tiny."""

import json

import pytest

from analysis import warmstart as bench
from sweep.grow.choices import Method


def test_the_plan_covers_every_method_per_seed_the_grid_and_the_lr_sweep(tmp_path):
    plan = bench.runs("gpt_tiny", tmp_path, [0, 1])
    names = [r["name"] for r in plan]
    assert len(names) == len(set(names))
    methods = [*bench.METHOD_FILES, "rc_sampling_iid"]
    budgets = [round(40 * b) for b in bench.BUDGETS]  # gpt_tiny: target_steps 40
    for seed in (0, 1):
        assert {f"{m}_s{seed}" for m in ["cold", *methods]} <= set(names)
        assert {f"{m}_b{b}_s{seed}" for m in ["cold", *methods] for b in budgets} <= set(names)
    assert {r["steps"] for r in plan if "_b" in r["name"]} == set(budgets)
    grid = [r for r in plan if r["name"].startswith("spp_")]
    assert len(grid) == len(bench.GRID_SHRINK) * len(bench.GRID_PERTURB) - 1  # default shared
    shifted = [r for r in plan if r["shift"]]
    assert sorted(r["shift"] for r in shifted) == sorted(2 * [-2, -1, 1, 2])
    for r in plan:
        assert r["warmstart"] is None or r["warmstart"]["method"] in set(Method)
    iid = next(r for r in plan if r["name"] == "rc_sampling_iid_s0")
    assert iid["warmstart"]["sampling"] == "iid"


@pytest.mark.slow  # 52 short target runs, each its own Submitit process
def test_the_benchmark_runs_end_to_end_and_resumes(tmp_path):
    argv = [
        "--ladder", "gpt_tiny", "--seeds", "0", "1", "--out", str(tmp_path), "--eval-every", "5",
        "tune.n_trials=2", "tune.n_startup_trials=1", "tune.widen_trials=0",
    ]  # fmt: skip
    assert bench.main(argv) == 0
    folder = tmp_path / "gpt_tiny"
    summary = json.loads((folder / "bench.json").read_text())
    methods = {*bench.METHOD_FILES, "rc_sampling_iid"}
    budgets = {f"{m}_b{round(40 * b)}" for m in [*methods, "cold"] for b in bench.BUDGETS}
    assert set(summary["methods"]) == methods | budgets
    for row in summary["methods"].values():
        assert len(row["final_val_loss"]) == 2
    for kind in ("cold", "warm"):
        assert len(summary["lr_transfer"][kind]["points"]) == len(bench.LR_SHIFTS)
    assert (folder / "warmstart_bench.png").stat().st_size > 10_000
    assert not list((folder / "bench").glob("*.ckpt"))
    before = {p.name: p.stat().st_mtime for p in (folder / "bench").glob("*.json")}
    assert bench.main(argv) == 0  # nothing to rerun
    assert before == {p.name: p.stat().st_mtime for p in (folder / "bench").glob("*.json")}
