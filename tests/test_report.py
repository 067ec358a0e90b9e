"""Report rendering: figures written, HTML self-contained, partial summaries tolerated."""

import json
import math
import re

import numpy as np
import optuna
import pytest

from sweep.metrics import drift, fit_optimum, speedup, transfer_verdict, wider_is_better
from sweep.report import fmt_flops, write_report

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
    transfer: dict = {"log2_lrs": LRS}
    for kind, shift in (("mup", lambda k: -9.0 + 0.05 * k), ("sp", lambda k: -8.0 - 1.0 * k)):
        curves = {str(w): lr_curve(w, shift(k)) for k, w in enumerate(WIDTHS)}
        optima = {w: fit_optimum(LRS, c).log2_lr for w, c in curves.items()}
        transfer[kind] = {
            "curves": curves,
            "optimum_log2_lr": optima,
            "drift_log2": drift(optima),
            "wider_is_better": wider_is_better(curves),
        }
    transfer["verdict"] = transfer_verdict(
        transfer["mup"]["drift_log2"], transfer["sp"]["drift_log2"]
    )
    transfer["tuned_log2_lr"] = -8.9
    warm, cold = val_curve(3.6, 2.9, 0.02), val_curve(5.5, 3.0, 0.012)
    sp = speedup(warm, cold, proxy_steps_equiv=30)
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


def assert_self_contained(text: str) -> None:
    assert not re.search(
        r"""(src|href)\s*=\s*(?!["']?data:image/png;base64,)""", text, re.IGNORECASE
    )
    assert "<script" not in text.lower() and "<link" not in text.lower()
    assert "http://" not in text and "https://" not in text and "file:" not in text


def test_full_summary_writes_every_figure_into_a_self_contained_page(tmp_path, toy_study):
    summary = json.loads(json.dumps(full_summary()))  # exactly what the pipeline's JSON gives
    coord = tmp_path / "coord_check.png"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2], [1, 2])
    fig.savefig(coord)
    plt.close(fig)

    out = write_report(summary, tmp_path / "report", coord_check_png=coord, study=toy_study)
    pngs = ["transfer", "warmstart", "optuna_history", "optuna_importance"]
    assert set(out) == {*pngs, "report"}
    for name in pngs:
        data = out[name].read_bytes()
        assert out[name].name == f"{name}.png" and data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 5000
    text = out["report"].read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == len(pngs) + 1  # + the coordinate check
    assert_self_contained(text)
    assert summary["transfer"]["verdict"] in text
    assert summary["transfer"]["verdict"].startswith("µP transfers")
    for needle in ("1.23e15", "5.60e15", "2.00e16", "40 trials, 17 pruned", "cold 400, warm 100"):
        assert needle in text
    assert "not run yet" not in text


def test_partial_summary_renders_with_notes(tmp_path):
    summary = {"tune": full_summary()["tune"]}
    out = write_report(summary, tmp_path)
    assert set(out) == {"report"}
    text = out["report"].read_text(encoding="utf-8")
    assert "best alpha_out" in text and "40 trials" in text
    for missing in ("transfer check", "target warm vs cold runs", "cost accounting"):
        assert f"No {missing} in the summary" in text
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
    summary["transfer"]["sp"]["curves"]["512"] = [None] * len(LRS)  # every LR diverged
    summary["transfer"]["sp"]["optimum_log2_lr"]["512"] = None
    del summary["transfer"]["mup"]  # only SP ran
    warm = val_curve(4.0, 3.5, 0.02)  # never reaches cold's final 3.0
    summary["target"]["warm"] = {"final_val_loss": warm[-1][1], "val_curve": warm}
    summary["target"]["speedup"] = summary["target"]["speedup_with_proxy"] = None
    out = write_report(json.loads(json.dumps(summary)), tmp_path)
    assert {"transfer", "warmstart", "report"} <= set(out)
    text = out["report"].read_text(encoding="utf-8")
    assert "speedup (cold ÷ warm steps)</th><td class='num'>—" in text
    assert "µP optimum drift" not in text and "SP optimum drift" in text


def test_optuna_study_gives_history_and_importance_pngs(tmp_path, toy_study):
    import matplotlib

    before = dict(matplotlib.rcParams)
    out = write_report({}, tmp_path, study=toy_study)
    assert dict(matplotlib.rcParams) == before  # Optuna's ggplot style must not leak
    assert out["optuna_history"].stat().st_size > 5000
    assert out["optuna_importance"].stat().st_size > 5000
    text = out["report"].read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == 2
    assert "Hyperparameter importances (Optuna" in text


def test_fmt_flops():
    assert fmt_flops(1.234e15) == "1.23e15"
    assert fmt_flops(9.999e-3) == "1.00e-2"
    assert fmt_flops(None) == "—"


def test_history_falls_back_to_our_own_plot(tmp_path, toy_study, monkeypatch):
    from optuna.visualization import matplotlib as ovm

    def broken(*_args, **_kwargs):
        raise RuntimeError("optuna's matplotlib backend failed")

    monkeypatch.setattr(ovm, "plot_optimization_history", broken)
    out = write_report({}, tmp_path, study=toy_study)
    assert out["optuna_history"].stat().st_size > 5000
