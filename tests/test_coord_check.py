"""The coordinate check is µP's real test: pass for µP, fail for SP, catch a broken rule."""

from dataclasses import replace

import pytest

from sweep.core import mup_rules
from sweep.core import parametrization as P
from sweep.core.coord_check import DEFAULT_THRESHOLD, coord_check
from sweep.core.model import GPTConfig
from sweep.core.train import OptimConfig

WIDTHS = [32, 64, 128, 256]
BASE = GPTConfig(d_model=32, d_head=8, seq_len=32, n_layer=2)
OPTIM = OptimConfig(lr=1e-2, schedule="constant")


def run(corpus, parametrization="mup", **overrides):
    cfg = replace(BASE, parametrization=parametrization, **overrides)
    return coord_check(cfg, WIDTHS, OPTIM, corpus, steps=4, batch_size=4, seeds=(0,))


def test_mup_activations_keep_their_size_across_widths(corpus):
    check = run(corpus)
    module, step, slope = check.worst()
    assert check.passes(), f"µP slope {slope:.2f} at {module}, step {step}"
    assert abs(check.slopes[:, 0]).max() < 0.6  # init: only the readout shrinks, as 1/sqrt(m)


def test_sp_activations_blow_up_with_width_and_steps(corpus):
    check = run(corpus, "sp")
    assert not check.passes()
    growth = check.slopes.max(axis=0)
    assert growth[0] < DEFAULT_THRESHOLD  # SP starts fine ...
    assert growth[-1] > 0.8  # ... and blows up once Adam's updates scale with width
    assert growth[-1] > growth[1]


def test_breaking_the_hidden_lr_rule_fails_the_check(corpus, monkeypatch):
    """Adam's hidden LR not divided by m: the check must notice."""
    monkeypatch.setattr(mup_rules, "lr_multiplier", lambda role, m, depth: 1.0)
    check = run(corpus)
    assert not check.passes()


def test_breaking_the_readout_multiplier_fails_the_check(corpus, monkeypatch):
    """Readout without the 1/m multiplier: logits grow with width after an update."""
    monkeypatch.setattr(P, "readout_multiplier", lambda cfg: cfg.alpha_out)
    check = run(corpus)
    assert not check.passes()
    assert check.worst()[0] == "logits"


@pytest.mark.parametrize("widths", [[32, 64], [64, 32, 128], [32, 32, 64]])
def test_bad_ladders_are_refused(corpus, widths):
    with pytest.raises(ValueError, match="widths"):
        coord_check(BASE, widths, OPTIM, corpus)
