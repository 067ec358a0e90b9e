"""What the product claims about µTransfer, measured on a small ladder (slow: trains ~60 models).

Three widths (32, 64, 128), the LR tuned on the proxy, the pipeline's own tune and transfer
stages with their bracketing grids: every optimum must be bracketed; the fitted µP optimum must
move less across widths than SP's; under µP a wider model must not be worse at any shared LR;
and the tuned LR must cost µP little at every width and SP more.
"""

import pytest

from sweep.config import compose_config
from sweep.pipeline import Pipeline

LADDER = (
    "+ladder=gpt_small",
    "ladder.widths=[32,64,128]",
    "ladder.target=256",
    "ladder.search={lr: {low: 3.0e-4, high: 1.0e-1}}",  # the LR alone: the claim is about it
    "tune.n_trials=8",
    "tune.n_startup_trials=4",
    "tune.widen_trials=0",
    "stages=[tune,transfer]",
    "logger=none",
    "launcher.cpus_per_task=1",
)


@pytest.mark.slow
def test_mup_optimum_stays_put_where_sp_drifts_and_wider_is_better(tmp_path):
    summary = Pipeline(compose_config(f"out_root={tmp_path}", *LADDER)).run()
    transfer = summary["transfer"]
    mup, sp = transfer["mup"], transfer["sp"]
    assert transfer["conclusive"], transfer["verdict"]["text"]  # every optimum bracketed
    assert mup["drift_log2"] < sp["drift_log2"], (mup["drift_log2"], sp["drift_log2"])
    assert mup["drift_log2"] <= 1.0 < sp["drift_log2"]
    optima = [sp["optimum_log2_lr"][str(w)] for w in (32, 64, 128)]
    assert optima == sorted(optima, reverse=True), f"SP's optimum should fall with width: {optima}"
    assert mup["wider_is_better"]
    assert mup["worst_regret"] < sp["worst_regret"]
    assert transfer["verdict"]["status"] == "passes", transfer["verdict"]["text"]
