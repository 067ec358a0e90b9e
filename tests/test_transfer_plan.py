"""The transfer check's and the target check's grids, planned on synthetic loss curves: they
start at the tuned LR, grow towards the optimum until it is bracketed, stop at their budget, and
spend the noise seeds at each series' best point."""

import math
import random

import pytest

from sweep.config import VerifyCheck, compose_config
from sweep.stages.stage import target_run_flops
from sweep.stages.transfer import (
    Result,
    Run,
    extra_seeds,
    grid_extension,
    next_runs,
    paired_regret,
    point_config,
    resolve_seeds,
    series_curve,
    transfer_summary,
)
from sweep.stages.verify import Check, next_steps, one_seed_band, verify_summary


def make_cfg(*overrides):
    return compose_config("+ladder=gpt_tiny", "ladder.widths=[32,64,128]", "ladder.target=256",
                          *overrides)  # fmt: skip


def complete(cfg, loss) -> dict[Run, Result]:
    """Run the planner to the end against `loss(parametrization, width, step, seed)`."""
    results: dict[Run, Result] = {}
    for _ in range(50):
        todo = next_runs(cfg, results)
        if not todo:
            return results
        assert not set(todo) & set(results), "a run was planned twice"
        results |= {run: Result(loss(*vars(run).values()), 1000) for run in todo}
    raise AssertionError("the planner never settled")


def shifted(optimum_step: dict[tuple[str, int], float], noise: float = 0.0):
    """A parabola in grid steps per series, the cliff past 3 steps above its optimum."""

    def loss(p, width, k, seed):
        k0 = optimum_step[(p, width)]
        if k > k0 + 3:
            return math.nan
        return 3.0 + 0.05 * (k - k0) ** 2 + noise * ((seed * 7919 + k * 104729) % 13 - 6) / 6

    return loss


MUP_FLAT_SP_DRIFTING = {
    **{("mup", w): 0.2 for w in (32, 64, 128)},
    ("sp", 32): 0.2,
    ("sp", 64): -1.3,
    ("sp", 128): -2.6,
}


def test_the_first_grid_is_centred_on_the_tuned_lr():
    cfg = make_cfg("ladder.lr_span=2")
    todo = next_runs(cfg, {})
    assert {run.step for run in todo} == {-2, -1, 0, 1, 2}
    assert {(run.parametrization, run.width) for run in todo} == {
        (p, w) for p in ("mup", "sp") for w in (32, 64, 128)
    }
    assert {run.seed for run in todo} == {cfg.seed}


def test_the_grid_grows_towards_the_optimum_until_it_is_bracketed():
    cfg = make_cfg("ladder.lr_max_points=8")
    results = complete(cfg, shifted(MUP_FLAT_SP_DRIFTING))
    for (p, width), k0 in MUP_FLAT_SP_DRIFTING.items():
        curve = series_curve(results, p, width, [cfg.seed])
        best = min(curve, key=curve.get)
        assert best == round(k0)
        assert min(curve) < best < max(curve)  # bracketed on both sides
        assert len(curve) <= 3 + abs(round(k0))  # grown only towards the optimum
    assert max(len(series_curve(results, "mup", w, [cfg.seed])) for w in (32, 64, 128)) == 3


def test_the_grid_stops_at_its_budget_and_the_verdict_says_inconclusive():
    cfg = make_cfg("ladder.lr_max_points=4")
    far = MUP_FLAT_SP_DRIFTING | {("sp", 128): -6.0}
    results = complete(cfg, shifted(far))
    curve = series_curve(results, "sp", 128, [cfg.seed])
    assert sorted(curve) == [-2, -1, 0, 1]  # 4 points, the optimum still below them
    summary = transfer_summary(cfg, results, tuned_lr=2**-6, target_flops=1e6)
    assert summary["conclusive"] is False and not summary["sp"]["bracketed"]["128"]
    verdict = summary["verdict"]
    assert verdict["status"] == "inconclusive"
    assert verdict["text"].startswith("inconclusive") and "SP width 128" in verdict["text"]


def test_noise_seeds_go_to_each_series_best_point_and_its_better_neighbour_once_settled():
    cfg = make_cfg("ladder.noise_seeds=2")
    results = complete(cfg, shifted(MUP_FLAT_SP_DRIFTING, noise=0.01))
    for (p, width), k0 in MUP_FLAT_SP_DRIFTING.items():
        repeats = [run for run in results if (run.parametrization, run.width) == (p, width)
                   and run.seed in extra_seeds(cfg)]  # fmt: skip
        best = round(k0)
        neighbour = best + 1 if k0 > best else best - 1  # the lower of the two sides
        assert {run.step for run in repeats} == {best, neighbour} and len(repeats) == 4
    noise = transfer_summary(cfg, results, tuned_lr=2**-6, target_flops=1e6)["noise"]
    assert noise["dof"] == 6 * 2 and 0 < noise["std"] < 0.02
    assert noise["paired"] and noise["paired_dof"] == 6 * 2


def correlated(optimum_step: float, sigma: float, rho: float):
    """A parabola in grid steps whose seed noise is shared across LRs with correlation `rho`:
    each seed's offset √ρ·z_seed plus an independent √(1−ρ)·e_(seed, step), both N(0, σ²)."""

    def loss(p, width, k, seed):
        common = random.Random(f"{p}{width}{seed}").gauss(0, 1)
        own = random.Random(f"{p}{width}{seed}_{k}").gauss(0, 1)
        noise = sigma * (math.sqrt(rho) * common + math.sqrt(1 - rho) * own)
        return 3.0 + 0.05 * (k - optimum_step) ** 2 + noise

    return loss


@pytest.mark.parametrize("rho", [0.0, 0.75, 0.96])
def test_the_paired_band_is_narrower_than_the_unpaired_one_by_the_factor_the_correlation_implies(
    rho,
):
    cfg = make_cfg("ladder.noise_seeds=300")
    results = complete(cfg, correlated(0.2, sigma=0.01, rho=rho))
    noise = transfer_summary(cfg, results, tuned_lr=2**-6, target_flops=1e6)["noise"]
    assert noise["paired"]
    assert noise["band"] / noise["unpaired_band"] == pytest.approx(math.sqrt(1 - rho), abs=0.05)
    assert noise["correlation"] == pytest.approx(rho, abs=0.1)
    if rho > 0:
        assert noise["relative_band"] < noise["relative_unpaired_band"]


def near_tolerance(true_regret: float, own: float = 0.012):
    """µP width 64's optimum between grid steps 0 and 1, so the tuned LR (step 0) loses
    `true_regret` against step 1; every other series has its optimum at step 0. Each seed's
    noise is mostly shared across LRs (σ 0.03), with `own` the spread of a seed's own part at
    each LR, which a paired regret sees."""
    curvature = 0.05
    k0 = 0.5 + true_regret * 3.0 / (2 * curvature)  # (L(0) − L(1)) / L(1) ≈ true_regret
    base = correlated(0.0, 0.03, rho=0.9)

    def loss(p, width, k, seed):
        if (p, width) != ("mup", 64):
            return base(p, width, k, seed)
        shared = random.Random(f"shared{seed}").gauss(0, 0.03)
        mine = random.Random(f"own{seed}_{k}").gauss(0, own)
        return 3.0 + curvature * (k - k0) ** 2 + shared + mine

    return loss


def complete_with_flops(cfg, loss) -> dict[Run, Result]:
    """`complete`, each run costing what it would cost to train."""
    results: dict[Run, Result] = {}
    tuned = dict(cfg.ladder.hparams)
    for _ in range(60):
        todo = next_runs(cfg, results)
        if not todo:
            return results
        assert not set(todo) & set(results), "a run was planned twice"
        flops = {run: point_config(cfg, tuned, run).flops for run in todo}
        results |= {run: Result(loss(*vars(run).values()), flops[run]) for run in todo}
    raise AssertionError("the planner never settled")


def test_a_regret_straddling_the_tolerance_takes_seeds_at_its_two_points_until_it_clears_it():
    cfg = make_cfg("model.vocab_size=256", "ladder.resolve_budget=100")
    results = complete_with_flops(cfg, near_tolerance(0.012))
    added = [run for run in results if run.seed in resolve_seeds(cfg)]
    assert added and {(r.parametrization, r.width, r.step) for r in added} == {
        ("mup", 64, 0),
        ("mup", 64, 1),
    }  # those two points only
    summary = transfer_summary(cfg, results, tuned_lr=2**-6, target_flops=target_run_flops(cfg))
    resolved = summary["resolved"]["64"]
    assert resolved["outcome"] == "settled" and resolved["added"] == len(added) // 2
    assert abs(resolved["regret"] - 0.005) >= resolved["band"]  # the interval clears it
    assert resolved["regret"] > 0.005 and summary["verdict"]["status"] == "fails"
    assert "settle it beyond the tolerance" in summary["verdict"]["text"]
    assert summary["mup"]["regret_seeds"]["64"] == resolved["seeds"] > 2
    assert 0 < summary["resolve_flops_vs_target"] <= 100


def test_a_seed_lost_at_the_best_point_leaves_the_width_judged_by_the_others():
    cfg = make_cfg("model.vocab_size=256", "ladder.noise_seeds=0")
    first = resolve_seeds(cfg)[0]
    losses = {(0, 0): 3.03, (1, 0): 3.00, (-1, 0): 3.2, (2, 0): 3.1}
    results = {Run("mup", 64, k, s): Result(v, 1) for (k, s), v in losses.items()}
    noise = {"paired": True, "paired_std": 0.01, "std": 0.02}
    before = paired_regret(cfg, results, "mup", 64, noise)
    results[Run("mup", 64, 0, first)] = Result(3.02, 1)
    results[Run("mup", 64, 1, first)] = Result(math.nan, 1)  # lost at the best point
    after = paired_regret(cfg, results, "mup", 64, noise)
    assert after == before and after.regret == pytest.approx(0.01)
    results[Run("mup", 64, 1, first)] = Result(3.01, 1)
    results[Run("mup", 64, 0, first)] = Result(math.nan, 1)  # diverged at the tuned LR
    assert paired_regret(cfg, results, "mup", 64, noise).regret == math.inf


@pytest.mark.parametrize("pairs", [0, 1, 3])
def test_the_seed_adding_loop_stops_at_its_budget(pairs):
    probe = make_cfg("model.vocab_size=256")
    run_cost = point_config(probe, dict(probe.ladder.hparams), Run("mup", 64, 0, 0)).flops
    budget = (2 * pairs + 1) * run_cost / target_run_flops(probe)  # room for `pairs` pairs
    cfg = make_cfg("model.vocab_size=256", f"ladder.resolve_budget={budget}")
    results = complete_with_flops(cfg, near_tolerance(0.0055, own=0.006))
    added = [run for run in results if run.seed in resolve_seeds(cfg)]
    assert len(added) == 2 * pairs
    assert next_runs(cfg, results) == []  # the loop has stopped, not merely paused
    summary = transfer_summary(cfg, results, tuned_lr=2**-6, target_flops=target_run_flops(cfg))
    assert summary["resolve_flops_vs_target"] <= budget
    resolved = summary["resolved"]["64"]
    assert resolved["outcome"] == "budget" and resolved["added"] == pairs
    wording = "still straddle it: ladder.resolve_budget" if pairs else "adds no seed"
    assert wording in summary["verdict"]["text"]


def test_the_target_check_judges_one_seed_runs_by_a_one_seed_band():
    cfg = make_cfg("ladder.transfer_seeds=3", "ladder.noise_seeds=2")
    results = complete(cfg, correlated(0.2, sigma=0.01, rho=0.5))
    noise = transfer_summary(cfg, results, tuned_lr=2**-6, target_flops=1e6)["noise"]
    assert noise["seeds_per_point"] == 3 and noise["paired"]
    one_seed = noise["relative_band"] / noise["band"] * 2 * noise["paired_std"]  # 2·σ_d/best
    assert one_seed_band(noise) == pytest.approx(one_seed)
    assert one_seed_band(noise) == pytest.approx(math.sqrt(3) * noise["relative_band"])


def test_the_summary_judges_by_regret_and_reads_a_flat_basin_as_flat():
    cfg = make_cfg("ladder.noise_seeds=1")
    results = complete(cfg, shifted(MUP_FLAT_SP_DRIFTING, noise=0.004))
    summary = transfer_summary(cfg, results, tuned_lr=2**-6, target_flops=1e6)
    mup, sp = summary["mup"], summary["sp"]
    assert summary["conclusive"] and summary["verdict"]["text"].startswith("µP transfers")
    assert mup["worst_regret"] < 0.005 < sp["worst_regret"]
    assert sp["regret"]["128"] > sp["regret"]["64"] > sp["regret"]["32"]
    assert mup["drift_beyond_noise_log2"] == 0.0 < sp["drift_beyond_noise_log2"]
    assert summary["flops_vs_target"] == pytest.approx(len(results) * 1000 / 1e6)


def test_grid_extension_rules():
    assert grid_extension({}, span=1, max_points=8) == [-1, 0, 1]
    assert grid_extension({-1: 3.0, 1: 3.1}, span=1, max_points=8) == [0]  # the first grid first
    assert grid_extension({-1: 3.2, 0: 3.0, 1: 3.1}, span=1, max_points=8) == []
    assert grid_extension({-1: 3.0, 0: 3.1, 1: 3.2}, span=1, max_points=8) == [-2]
    assert grid_extension({-1: 3.2, 0: 3.1, 1: 3.0}, span=1, max_points=8) == [2]
    assert grid_extension({-1: 3.2, 0: 3.1, 1: 3.0}, span=1, max_points=3) == []
    all_diverged = {-1: math.nan, 0: math.nan, 1: math.nan}
    assert grid_extension(all_diverged, span=1, max_points=8) == [-2]


def verify_records(optimum: float, steps: list[int], resolution: float = 1.0):
    """Cold target runs on a parabola with a known optimum, tuned LR at log2 -6."""
    return parabola_records(optimum, steps, -6.0, resolution, steps_done=10, flops=500)


def parabola_records(optimum, steps, centre, resolution=1.0, steps_done=10, flops=500):
    """Completed runs at log2 LR centre + k·resolution on 2 + 0.04·(x − optimum)²."""
    records = {}
    for k in steps:
        x = centre + k * resolution
        loss = 2.0 + 0.04 * (x - optimum) ** 2
        records[k] = {
            "log2_lr": x,
            "result": {"status": "completed", "reason": "", "steps_done": steps_done,
                       "train_loss": [], "val_loss": [[steps_done, loss]], "tokens": 1,
                       "flops": flops},
        }  # fmt: skip
    return records


def test_the_verify_stage_brackets_the_targets_optimum_and_reports_its_regret():
    optimum, steps = -7.5, [0, -1, 1]
    for _ in range(5):
        records = verify_records(optimum, steps)
        curve = {k: r["result"]["val_loss"][-1][1] for k, r in records.items()}
        new = next_steps(curve, max_runs=4)
        if not new:
            break
        steps += new
    assert sorted(steps) == [-3, -2, -1, 0, 1]  # grown down until the optimum is bracketed
    records[0] |= {"from_target": True}  # the target stage's cold run, as read_curve marks it
    longer = "the target trains 300 steps against the ladder's 150"
    centre = {"applied": -6.0, "carried": -6.0}
    summary = verify_summary(records, centre, 0.001, target_flops=500, tolerance=0.005,
                             differs=longer)  # fmt: skip
    assert summary["bracketed"] and summary["optimum_log2_lr"] == pytest.approx(-7.5)
    best = min(2.0 + 0.04 * (x + 7.5) ** 2 for x in (-9.0, -8.0, -7.0, -6.0, -5.0))
    assert summary["regret"] == pytest.approx((2.0 + 0.04 * 1.5**2 - best) / best)  # 4%
    assert summary["runs"] == 4 and summary["flops_vs_target"] == 4.0  # k = 0 is the cold run
    verdict = summary["verdict"]
    assert verdict["status"] == "fails"
    assert "(beyond the tolerance 0.50% and the noise ±0.10%)" in verdict["text"]
    assert verdict["text"].endswith(longer)


def test_the_verify_stage_grows_toward_the_carried_lr_once_bracketed():
    steps = [0, -1, 1]  # the optimum at the applied LR: bracketed at once
    for _ in range(5):
        records = verify_records(-6.0, steps)
        curve = {k: r["result"]["val_loss"][-1][1] for k, r in records.items()}
        new = next_steps(curve, max_runs=4, cover=2.4)  # the carried LR 2.4 steps above
        if not new:
            break
        steps += new
    assert sorted(steps) == [-1, 0, 1, 2, 3]  # it now lies on the grid, judged, not extrapolated
    summary = verify_summary(
        records, {"applied": -6.0, "carried": -3.6}, 0.001, target_flops=500, tolerance=0.005
    )
    assert math.isfinite(summary["judged"]["carried"]["regret"])
    curve = {k: r["result"]["val_loss"][-1][1] for k, r in verify_records(-6.0, [0, -1, 1]).items()}
    assert next_steps(curve, max_runs=3, cover=5.0) == [2]  # then the budget ends it
    assert next_steps(curve | {2: 2.2}, max_runs=3, cover=5.0) == []


def test_the_verify_stage_stops_at_its_budget():
    records = verify_records(-12.0, [0, -1, 1])
    curve = {k: r["result"]["val_loss"][-1][1] for k, r in records.items()}
    assert next_steps(curve, max_runs=2) == []
    centre = {"applied": -6.0, "carried": -6.0}
    summary = verify_summary(records, centre, relative_band=0.0, target_flops=500, tolerance=0.005)
    assert not summary["bracketed"] and summary["verdict"]["status"] == "inconclusive"
    assert "inconclusive" in summary["verdict"]["text"]


def test_probes_put_the_targets_optimum_where_the_horizon_rule_carries_theirs():
    # probes centred 1.5 log2 above the applied LR (-6): their curve's optimum at -3.5 is the
    # target's at -5.0 by the same rule, and the centre (-4.5) loses what the parabola says
    shift, optimum = 1.5, -3.5
    records = parabola_records(optimum, [-2, -1, 0, 1, 2], -6.0 + shift, steps_done=25, flops=50)
    rule = "the rule moves the LR +1.50 log2 to their length"
    probes = Check(VerifyCheck.probes, 25, 256, 400, 256, shift, rule)
    summary = verify_summary(
        records, {"applied": -6.0, "carried": -6.0}, 0.05, target_flops=500, tolerance=0.005,
        check=probes,
    )  # fmt: skip
    assert summary["check"] == "probes" and summary["steps"] == 25
    assert summary["centre_log2_lr"] == pytest.approx(-4.5)
    assert summary["optimum_log2_lr"] == pytest.approx(optimum)
    assert summary["target_optimum_log2_lr"] == pytest.approx(optimum - shift)
    lo, hi = summary["target_optimum_interval"]
    assert lo < optimum - shift < hi
    assert summary["regret"] == pytest.approx(0.04 / 2.0)  # 2 %: beyond 0.5 %, within the noise
    assert summary["runs"] == 5 and summary["flops_vs_target"] == pytest.approx(0.5)
    assert summary["verdict"]["status"] == "within_noise"
    assert "probes at width 256 (25 steps, 1/16 of the target's)" in summary["verdict"]["text"]


def test_a_rung_reads_the_targets_optimum_off_its_own_curve_moved_across_width():
    # a rung at width 64 trains the target's 400 steps; the joint fit puts its LR 0.5 log2 above
    # the target's (applied -6.0): the rung's optimum at -4.8 is the target's at -5.3, and the
    # centre it judges (-5.5) loses what the parabola says there against its best point (-4.5)
    shift, optimum = 0.5, -4.8
    records = parabola_records(optimum, [-1, 0, 1, 2], -6.0 + shift, steps_done=400, flops=30)
    rule = "the joint fit moves the LR +0.50 log2 from width 256 to 64"
    rung = Check(VerifyCheck.rung, 400, 64, 400, 256, shift, rule)
    summary = verify_summary(
        records, {"applied": -6.0, "carried": -4.0}, 0.05, target_flops=500, tolerance=0.005,
        check=rung,
    )  # fmt: skip
    assert summary["check"] == "rung" and summary["width"] == 64 and summary["steps"] == 400
    assert summary["centre_log2_lr"] == pytest.approx(-5.5)
    assert summary["optimum_log2_lr"] == pytest.approx(optimum)
    assert summary["target_optimum_log2_lr"] == pytest.approx(optimum - shift)
    best = 2.0 + 0.04 * 0.3**2
    assert summary["regret"] == pytest.approx(0.04 * (0.7**2 - 0.3**2) / best)  # 0.80 %
    assert summary["verdict"]["status"] == "within_noise"
    # the carried LR (-4.0) is judged where the rung sees it, moved by the same shift (-3.5)
    assert summary["judged"]["carried"]["regret"] == pytest.approx(0.04 * 1.3**2 / 2.0, rel=1e-6)
    assert summary["runs"] == 4 and summary["flops_vs_target"] == pytest.approx(120 / 500)
    text = summary["verdict"]["text"]
    assert text.startswith("a rung of the target's length at width 64 (400 steps; 1/4 of the ")
    assert "the LR for width 64 (-5.50) loses 0.80%" in text and rule in text


def test_an_unbracketed_rung_says_its_regret_is_at_its_width():
    records = parabola_records(0.0, [-1, 0, 1, 2], -6.0, steps_done=400, flops=30)
    rule = "µP carries the optimum from width 64 to 256 unchanged"
    rung = Check(VerifyCheck.rung, 400, 64, 400, 256, 0.0, rule)
    summary = verify_summary(
        records, {"applied": -6.0, "carried": -6.0}, 0.05, target_flops=500, tolerance=0.005,
        check=rung,
    )  # fmt: skip
    text = summary["verdict"]["text"]
    assert summary["verdict"]["status"] == "inconclusive"
    assert f"at width 64; {rule}, so this check rests on that rule" in text


def test_unbracketed_probes_say_their_regret_is_at_their_length_and_what_it_rests_on():
    # the optimum lies past the probes' highest LR: a lower bound at the probes' length only
    records = parabola_records(0.0, [-1, 0, 1, 2], -6.0, steps_done=25, flops=50)
    rule = "the joint fit resolves no horizon slope beyond its error"
    probes = Check(VerifyCheck.probes, 25, 256, 1600, 256, 0.0, rule)
    summary = verify_summary(
        records, {"applied": -6.0, "carried": -6.0}, 0.05, target_flops=500, tolerance=0.005,
        check=probes,
    )  # fmt: skip
    text = summary["verdict"]["text"]
    assert summary["verdict"]["status"] == "inconclusive" and not summary["bracketed"]
    assert "at their length; the joint fit resolves no horizon slope" in text
    assert text.endswith("so this check rests on that rule")


def test_a_candidate_beyond_the_curve_is_off_it_not_a_nan_percent():
    records = parabola_records(-6.0, [-1, 0, 1], -6.0)
    summary = verify_summary(
        records, {"applied": -6.0, "carried": -6.0, "unshrunk": -40.0}, 0.05, target_flops=500,
        tolerance=0.005,
    )  # fmt: skip
    text = summary["verdict"]["text"]
    assert "(log2 -40.00) off the measured LRs" in text and "nan" not in text
