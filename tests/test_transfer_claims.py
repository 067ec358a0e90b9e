"""What the product claims about µTransfer, measured on a small ladder (slow: trains 54 models).

Three widths (32, 64, 128), a log2-LR grid that brackets every optimum, the pipeline's own tune
and transfer stages: the fitted µP optimum must move less across widths than SP's, and under µP
a wider model must not be worse at any learning rate.
"""

import pytest

from sweep.config import compose_config
from sweep.core.metrics import fit_optimum
from sweep.pipeline import Pipeline

LADDER = (
    "+ladder=gpt_small",
    "ladder.widths=[32,64,128]",
    "ladder.target=256",
    "ladder.search={}",  # the ladder's default HPs: the check is about the LR alone
    "tune.n_trials=1",
    "stages=[tune,transfer]",
    "logger=none",
    "launcher.cpus_per_task=1",
)


@pytest.mark.slow
def test_mup_optimum_stays_put_where_sp_drifts_and_wider_is_better(tmp_path):
    summary = Pipeline(compose_config(f"out_root={tmp_path}", *LADDER)).run()
    mup, sp = summary["transfer"]["mup"], summary["transfer"]["sp"]
    grid = summary["transfer"]["log2_lrs"]
    for name, section in (("µP", mup), ("SP", sp)):
        for width, curve in section["curves"].items():
            assert not fit_optimum(grid, curve).at_edge, f"{name} {width}: optimum on a grid edge"
    assert mup["drift_log2"] < sp["drift_log2"], (mup["drift_log2"], sp["drift_log2"])
    assert mup["drift_log2"] <= 1.0 < sp["drift_log2"]
    optima = [sp["optimum_log2_lr"][str(w)] for w in (32, 64, 128)]
    assert optima == sorted(optima, reverse=True), f"SP's optimum should fall with width: {optima}"
    assert mup["wider_is_better"]
    assert summary["verdict"].startswith("µP transfers")
