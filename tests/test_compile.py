"""torch.compile must work on the µP model (mup's own MuReadout breaks it)."""

from dataclasses import replace

import pytest

from sweep.core.hardware import Execution
from sweep.core.train import train


@pytest.mark.slow
def test_compiled_mup_model_trains_like_the_eager_one(corpus, tiny_run):
    run = replace(tiny_run, model=tiny_run.model.at_width(64), steps=6, eval_every=3)
    eager, _ = train(run, corpus)
    compiled, _ = train(run, corpus, execution=Execution(compile=True))
    assert compiled.status == "completed"
    assert compiled.train_loss[-1][1] < compiled.train_loss[0][1]
    for (_, a), (_, b) in zip(eager.train_loss, compiled.train_loss, strict=True):
        assert a == pytest.approx(b, rel=1e-3)
