"""`analysis.joint_refit` refits a finished run's joint fit from its saved sections: on a run
whose summary the current code wrote, it gives back the saved shift; where the saved shift
differs (an older fit), it says both."""

import json
import math

from omegaconf import OmegaConf
from test_axes import run_check, synthetic, tiny, transfer_section

from analysis.joint_refit import refit
from sweep.stages import axes


def finished_run(tmp_path, width_slope: float = -0.5):
    cfg = tiny(
        tmp_path, "axes.horizon=[2,4,8]", "ladder.widths=[32,64,128,256]", "ladder.target=512"
    )
    tuned = dict(cfg.ladder.hparams) | {"lr": 0.01}
    results = run_check(cfg, tuned, synthetic(cfg, tuned, width_slope=width_slope))
    optima = {w: math.log2(0.01) + width_slope * math.log2(w / 32) for w in cfg.ladder.widths}
    transfer = transfer_section(math.log2(0.01), optima, band=0.002)
    section = axes.axes_summary(cfg, tuned, results, transfer)
    run = tmp_path / "run"
    run.mkdir()
    OmegaConf.save(cfg, run / "config.yaml")
    summary = {"tune": {"best_params": tuned}, "transfer": transfer, "axes": section}
    (run / "summary.json").write_text(json.dumps(summary))
    return run, section


def test_a_run_refitted_by_the_code_that_wrote_it_gives_its_own_shift(tmp_path):
    run, section = finished_run(tmp_path)
    out = refit(run)
    assert out["shift_now"] == out["shift_as_run"] == section["joint"]["log2_shift_vs_carry"]
    assert out["parts"]["width"]["shrunk"] < 0  # the width drift it was given, measured


def test_an_older_fit_s_shift_is_set_beside_the_current_one(tmp_path):
    run, section = finished_run(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    summary["axes"]["joint"]["log2_shift_vs_carry"] = 0.0  # as a fit that moved nothing
    (run / "summary.json").write_text(json.dumps(summary))
    out = refit(run)
    assert out["shift_as_run"] == 0.0
    assert out["shift_now"] == section["joint"]["log2_shift_vs_carry"] != 0.0
