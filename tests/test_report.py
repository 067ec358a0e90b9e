"""The report: every figure the summary supports, embedded in one self-contained page whose key
numbers are the console's; partial summaries give notes, not errors."""

import base64
import html
import json
import math
import re

import numpy as np
import optuna
import pytest
from rich.console import Console

from sweep.core.coord_check import CoordCheck
from sweep.core.lr_curve import fit_optimum, optimum_interval, relative_regret
from sweep.core.metrics import (
    drift,
    drift_beyond_noise,
    run_verdict,
    transfer_verdict,
    wider_is_better,
)
from sweep.core.speedup import speedup
from sweep.core.verdict import Verdict
from sweep.edges.console import print_summary
from sweep.edges.figures import vertex_loss
from sweep.edges.report import write_report
from sweep.edges.summary_table import fmt_flops, summary_rows
from sweep.stages.report import coord_check_summary

WIDTHS = [64, 128, 256, 512]
LRS = [float(x) for x in np.arange(-14.0, -5.5, 0.5)]


def lr_curve(width: int, optimum: float) -> list[float | None]:
    """A U-shaped loss vs log2 LR that gets lower with width and diverges past a cliff."""
    x = np.array(LRS)
    loss = 3.6 - 0.08 * math.log2(width / 64) + 0.12 * (x - optimum) ** 2
    loss = loss + 0.6 * np.maximum(x - optimum - 1.5, 0) ** 2  # sharp rise before divergence
    return [None if lr > optimum + 2.6 else float(v) for lr, v in zip(x, loss, strict=True)]


def val_curve(start: float, final: float, rate: float, steps: int = 400) -> list[list[float]]:
    s = np.arange(0, steps + 1, 25)
    return [[int(t), float(final + (start - final) * math.exp(-rate * t))] for t in s]


def full_summary() -> dict:
    tuned = -8.9
    transfer: dict = {"tuned_log2_lr": tuned, "noise": {"std": 0.004, "dof": 8, "band": 0.011}}
    regrets = {}
    for kind, shift in (("mup", lambda k: -9.0 + 0.05 * k), ("sp", lambda k: -8.0 - 1.0 * k)):
        curves = {str(w): lr_curve(w, shift(k)) for k, w in enumerate(WIDTHS)}
        regrets[kind] = {w: relative_regret(LRS, c, tuned) for w, c in curves.items()}
        optima = {w: fit_optimum(LRS, c).log2_lr for w, c in curves.items()}
        intervals = {w: list(optimum_interval(LRS, c, 0.011)) for w, c in curves.items()}
        transfer[kind] = {
            "curves": {w: [[x, y] for x, y in zip(LRS, c, strict=True)] for w, c in curves.items()},
            "optimum_log2_lr": optima,
            "optimum_interval": intervals,
            "bracketed": {w: True for w in curves},
            "regret": regrets[kind],
            "worst_regret": max(regrets[kind].values()),
            "drift_log2": drift(optima),
            "drift_beyond_noise_log2": drift_beyond_noise(intervals),
            "wider_is_better": wider_is_better(
                {w: dict(zip(LRS, c, strict=True)) for w, c in curves.items()}
            ),
        }
    transfer["verdict"] = transfer_verdict(regrets["mup"], regrets["sp"], noise=0.003).to_dict()
    transfer |= {"runs": 50, "flops_vs_target": 1.25, "conclusive": True}
    verify_curve = [[x, 2.9 + 0.02 * (x - tuned - 0.3) ** 2] for x in (-9.9, -8.9, -7.9)]
    verify = {
        "curve": verify_curve,
        "tuned_log2_lr": tuned,
        "optimum_log2_lr": tuned + 0.3,
        "optimum_interval": [tuned - 0.4, tuned + 1.0],
        "bracketed": True,
        "regret": 0.02 * 0.09 / 2.9,
        "runs": 2,
        "flops_vs_target": 2.0,
        "verdict": {"status": "passes", "text": "at the target: the tuned LR loses 0.06%"},
    }
    warm, cold = val_curve(3.6, 2.9, 0.02), val_curve(5.5, 3.0, 0.012)
    sp = speedup(warm, cold, source_steps_equiv=30)
    return {
        "ladder": {"name": "gpt_small", "widths": WIDTHS, "target": 1024, "proxy": 64},
        "tune": {
            "best_params": {
                "lr": 2**-8.9,
                "init_std": 0.02,
                "alpha_out": 1.3,
                "alpha_attn": 0.8,
                "alpha_in": 2.0,
            },
            "best_value": 3.61,
            "n_trials": 40,
            "n_pruned": 17,
            "n_failed": 1,
        },
        "transfer": transfer,
        "verify": verify,
        "target": {
            "width": 1024,
            "warm": {"final_val_loss": warm[-1][1], "val_curve": warm},
            "cold": {"final_val_loss": cold[-1][1], "val_curve": cold},
            **{k: v for k, v in sp.items() if k != "target_loss"},
        },
        "cost": {"tuning_flops": 1.234e15, "transfer_flops": 5.6e15, "target_flops": 2e16},
    }


@pytest.fixture(scope="module")
def toy_study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(
        lambda t: (t.suggest_float("x", -3, 3) - 1) ** 2 + 0.1 * t.suggest_float("y", 0, 1),
        n_trials=6,
    )
    return study


def coord_checks(mup_slope: float, sp_slope: float) -> list[CoordCheck]:
    """Checks over widths 64-512 whose one module grows with the given slopes at the last step."""
    widths = [64, 128, 256, 512]
    checks = []
    for parametrization, slope in (("mup", mup_slope), ("sp", sp_slope)):
        scales = np.array([[[1.0] * 4, [float(w / 64) ** slope for w in widths]]])  # (1, 2, 4)
        slopes = np.array([[0.0, slope]])
        checks.append(CoordCheck(parametrization, widths, ["block0.mlp"], scales, slopes))
    return checks


def with_coord_check(summary: dict, checks: list[CoordCheck]) -> dict:
    summary["coord_check"] = coord_check_summary(checks)
    transfer = Verdict.from_dict(summary["transfer"]["verdict"])
    summary["verdict"] = run_verdict(transfer, summary["coord_check"]["mup"]).to_dict()
    return json.loads(json.dumps(summary))  # exactly what the pipeline's JSON gives


def assert_self_contained(text: str) -> None:
    """Nothing the page needs is fetched: no tag loads a file or URL, and the only scripts are
    inline (plotly.js and Optuna's plots; their code mentions URLs it never loads)."""
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.IGNORECASE)
    markup = re.sub(r"<script[^>]*>.*?</script>", "", text, flags=re.IGNORECASE | re.DOTALL)
    assert not re.search(
        r"""(src|href)\s*=\s*(?!["']?data:image/png;base64,)""", markup, re.IGNORECASE
    )
    assert "<link" not in markup.lower()
    assert "http://" not in markup and "https://" not in markup and "file:" not in markup


def embedded_images(text: str) -> list[bytes]:
    return [
        base64.b64decode(m)
        for m in re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    ]


def drawn(path) -> bool:
    """A real picture: a PNG whose pixels are not all one colour."""
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    return pixels.ndim == 3 and float(pixels[..., :3].std()) > 0.01


def test_every_figure_is_drawn_and_embedded_once(tmp_path, toy_study):
    summary = with_coord_check(full_summary(), coord_checks(0.05, 1.1))
    out = write_report(summary, tmp_path, study=toy_study, coord_checks=coord_checks(0.05, 1.1))
    names = [
        "transfer",
        "verify",
        "coord_check",
        "warmstart",
        "optuna_history",
        "optuna_importance",
    ]
    assert set(out) == {*names, "report"}
    assert all(drawn(out[name]) for name in names)
    text = out["report"].read_text(encoding="utf-8")
    # the study's figures once each: interactive, their PNGs for W&B only
    static = [name for name in names if not name.startswith("optuna")]
    assert sorted(embedded_images(text)) == sorted(out[name].read_bytes() for name in static)
    assert "Hyperparameter importances (PED-ANOVA)" in text and "Optimisation history" in text
    assert_self_contained(text)
    assert "not run yet" not in text


def test_the_page_and_the_console_show_the_same_rows(tmp_path):
    summary = with_coord_check(full_summary(), coord_checks(0.05, 1.1))
    page = write_report(summary, tmp_path)["report"].read_text(encoding="utf-8")
    console = Console(record=True, width=300)
    print_summary(console, summary, tmp_path)
    printed = console.export_text()
    rows = summary_rows(summary)
    cells = re.findall(r'<tr><th>(.*?)</th><td class="num">(.*?)</td></tr>', page, re.S)
    assert [(html.unescape(k), html.unescape(v)) for k, v in cells] == rows
    for label, value in rows:
        assert label in printed and value in printed
    values = dict(rows)
    assert values["FLOPs tuning"] == "1.23e15" and values["FLOPs total"] == "2.68e16"
    assert values["trials"] == "40 (17 pruned, 0 diverged, 1 failed)"
    assert values["steps to the cold final loss"] == "cold 400, warm 89"  # interpolated


def test_the_coordinate_check_states_what_was_measured(tmp_path):
    summary = with_coord_check(full_summary(), coord_checks(0.05, 1.1))
    out = write_report(summary, tmp_path, coord_checks=coord_checks(0.05, 1.1))
    text = html.unescape(out["report"].read_text(encoding="utf-8"))
    assert "µP worst slope 0.050 at block0.mlp, step 1 ≤ 0.4: pass" in text
    assert "SP worst slope 1.100 at block0.mlp, step 1 > 0.4: FAIL" in text
    assert summary["verdict"] == summary["transfer"]["verdict"]  # a passing µP check adds nothing


def test_a_failing_mup_coordinate_check_leads_the_verdict(tmp_path):
    summary = with_coord_check(full_summary(), coord_checks(0.6, 1.1))
    verdict = summary["verdict"]["text"]
    assert summary["verdict"]["status"] == "fails"
    assert verdict.startswith("the µP coordinate check FAILS (worst slope 0.60 > 0.4")
    assert verdict.endswith(summary["transfer"]["verdict"]["text"])
    rows = dict(summary_rows(summary))
    assert rows["verdict"] == verdict
    assert rows["µP coord check worst slope"].endswith("> 0.4: FAIL")
    text = html.unescape(write_report(summary, tmp_path)["report"].read_text(encoding="utf-8"))
    assert verdict in text


@pytest.mark.parametrize(
    "status, word, warns",
    [("passes", "passes", False), ("within_noise", "within the noise", False),
     ("inconclusive", "inconclusive", True), ("fails", "fails", True)],
)  # fmt: skip
def test_the_verdict_box_is_coloured_and_worded_by_its_status(tmp_path, status, word, warns):
    summary = full_summary() | {"verdict": {"status": status, "text": "what the checks found"}}
    summary["transfer"]["verdict"] = {"status": status, "text": "what the ladder found"}
    text = write_report(summary, tmp_path)["report"].read_text(encoding="utf-8")
    box = re.search(r'<p class="verdict ([^"]*)" data-status="([^"]*)">(.*?)</p>', text, re.S)
    assert box and box.group(2) == status
    assert box.group(1).split() == [status, "warn"] if warns else [status]
    # the run's status word, then each check's in a line; each check's own text below
    assert box.group(3).startswith(f'<span class="status">{word}</span>across the ladder {word}')
    line = r'<li class="verdict ([^"]*)" data-check="across the ladder"[^>]*>(.*?)</li>'
    item = re.search(line, text)
    assert item and item.group(1) == status
    assert item.group(2) == (
        f'<span class="status">{word}</span><b>across the ladder</b>: what the ladder found'
    )
    assert f".verdict.{status}" in text or status == "passes"  # every status has its colour


def test_console_prints_brackets_and_nan_literally(tmp_path):
    summary = {"ladder": {"name": "[bold]x"}, "tune": {"best_params": {"lr": math.nan}}}
    summary["target"] = {"reason": "loss was [nan] at step 3"}
    console = Console(record=True, width=200)
    print_summary(console, summary, tmp_path)
    printed = console.export_text()
    assert "loss was [nan] at step 3" in printed and "tuned lr" in printed


def test_partial_summary_renders_with_notes(tmp_path):
    summary = {"tune": full_summary()["tune"]}
    out = write_report(summary, tmp_path)
    assert set(out) == {"report"}
    text = html.unescape(out["report"].read_text(encoding="utf-8"))
    assert "tuned alpha_out" in text and "40 (17 pruned" in text
    for note in (
        "No transfer section in the summary",
        "No target section in the summary",
        "No cost accounting in the summary",
        "No coordinate check",
        "No Optuna study",
    ):
        assert note in text
    assert "data:image/png" not in text
    assert_self_contained(text)


def test_empty_summary_and_single_trial_study(tmp_path):
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    out = write_report({}, tmp_path, study=study)
    assert set(out) == {"report"}
    assert "Fewer than 2 complete Optuna trials" in out["report"].read_text(encoding="utf-8")


def test_diverged_widths_and_missing_warm_reach(tmp_path):
    summary = full_summary()
    summary["transfer"]["sp"]["curves"]["512"] = [[x, None] for x in LRS]  # every LR diverged
    summary["transfer"]["sp"]["optimum_log2_lr"]["512"] = None
    del summary["transfer"]["mup"]  # only SP ran
    warm = val_curve(4.0, 3.5, 0.02)  # never reaches cold's final 3.0
    summary["target"]["warm"] = {"final_val_loss": warm[-1][1], "val_curve": warm}
    summary["target"] |= speedup(warm, summary["target"]["cold"]["val_curve"])
    out = write_report(json.loads(json.dumps(summary)), tmp_path)
    assert {"transfer", "warmstart", "report"} <= set(out)
    rows = dict(summary_rows(summary))
    assert rows["speedup (cold ÷ warm steps)"] == "—"
    assert rows["steps to the cold final loss"] == "cold 400, warm never"
    assert rows["speedup note"].startswith("warm run never reached the cold final loss")
    assert "µP optimum drift" not in rows and "SP optimum drift" in rows


def test_optuna_study_gives_history_and_importance_pngs(tmp_path, toy_study):
    import matplotlib

    before = dict(matplotlib.rcParams)
    out = write_report({}, tmp_path, study=toy_study)
    assert dict(matplotlib.rcParams) == before  # Optuna's ggplot style must not leak
    assert drawn(out["optuna_history"]) and drawn(out["optuna_importance"])
    text = out["report"].read_text(encoding="utf-8")
    # on the page once each, as Optuna's interactive plots; the PNGs are W&B's
    assert embedded_images(text) == []
    assert "<h3>Optimisation history</h3>" in text
    assert "<h3>Hyperparameter importances (PED-ANOVA)</h3>" in text


def test_fmt_flops():
    assert fmt_flops(1.234e15) == "1.23e15"
    assert fmt_flops(9.999e-3) == "1.00e-2"
    assert fmt_flops(None) == "—"
    assert fmt_flops(0) == "0"


def test_history_falls_back_to_our_own_plot(tmp_path, toy_study, monkeypatch):
    from optuna.visualization import matplotlib as ovm

    def broken(*_args, **_kwargs):
        raise RuntimeError("optuna's matplotlib backend failed")

    monkeypatch.setattr(ovm, "plot_optimization_history", broken)
    out = write_report({}, tmp_path, study=toy_study)
    assert drawn(out["optuna_history"])


@pytest.mark.parametrize("drift", [False, True])
def test_the_joint_fit_is_one_row_of_slopes_and_one_of_its_prediction(drift):
    joint = {
        "points": 7,
        "slopes": {"width": 0.19, "tokens": -0.3},
        "stderr": {"width": 0.17, "tokens": 0.05},
        "shifts": {
            "width": {"fitted": 0.57, "stderr": 0.51, "shrunk": 0.11},
            "horizon": {"fitted": -0.12, "stderr": 0.02, "shrunk": -0.12},
        },
        "width_drift": drift,
        "log2_lr": -4.49,
        "log2_shift_vs_carry": 0.16,
    }
    rows = dict(summary_rows(full_summary() | {"axes": {"joint": joint}}))
    slopes = rows["LR optimum slopes, log2 (7 optima)"]
    assert slopes.startswith("width +0.19 ± 0.17, tokens -0.30 ± 0.05")
    assert ("beyond its error" in slopes) == drift
    assert rows["target log2 LR by the joint fit"] == "-4.49 (+0.16 from the tuned LR)"
    assert rows["its shift by part, ± error → as applied"] == (
        "width +0.57 ± 0.51 → +0.11; horizon -0.12 ± 0.02 → -0.12"
    )
    assert not any("joint" in label for label in dict(summary_rows(full_summary())))


def test_a_fitted_optimums_star_sits_at_the_parabolas_vertex_not_on_the_polyline():
    xs, ys = np.array([-5.0, -4.0, -3.0]), np.array([2.10, 2.05, 2.09])
    optimum = fit_optimum(xs.tolist(), ys.tolist())
    # the parabola through the three points bottoms out below the segment joining them
    assert vertex_loss(xs, ys, optimum.log2_lr) == pytest.approx(optimum.loss)
    assert optimum.loss < float(np.interp(optimum.log2_lr, xs, ys)) - 1e-3
    edge = np.array([2.2, 2.1, 2.0])  # not bracketed: no vertex, the measured point
    assert vertex_loss(xs, edge, -3.0) == 2.0
