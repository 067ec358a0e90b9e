"""The vocabulary is read from the corpus once, before any job, and stored in the config:
building a model reads no file, a job handed a raw config resolves it alike, and a vocabulary
given in `model.vocab_size` pads the corpus's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sweep.config import (
    compose_config,
    data_config,
    job_config,
    model_config,
    plain,
    resolve_vocabulary,
    run_config,
)
from sweep.core.data import load_corpus
from sweep.core.train import train


def test_building_a_model_reads_no_file(tmp_path):
    missing = tmp_path / "no_such_corpus.txt"  # building must not look for it
    cfg = compose_config("+ladder=gpt_tiny", "data=text", f"data.path={missing}")
    with pytest.raises(ValueError, match=r"model\.vocab_size is not resolved"):
        model_config(cfg, 32, "mup", dict(cfg.ladder.hparams))
    cfg.model.vocab_size = 300
    assert model_config(cfg, 32, "mup", dict(cfg.ladder.hparams)).vocab_size == 300
    with pytest.raises(ValueError):  # resolving is what reads the corpus
        resolve_vocabulary(compose_config("+ladder=gpt_tiny", "data=text", f"data.path={missing}"))


def test_the_corpus_gives_the_vocabulary_at_least_its_bytes(tmp_path):
    tokens = tmp_path / "tokens.bin"
    np.arange(20_000, dtype=np.uint16).__mod__(1000).astype(np.uint16).tofile(tokens)
    cfg = compose_config(
        "+ladder=gpt_tiny", "data=tokens", f"data.path={tokens}", f"data.cache_dir={tmp_path}"
    )
    resolve_vocabulary(cfg)
    assert cfg.model.vocab_size == load_corpus(data_config(cfg)).vocab_size == 1000
    text = compose_config("+ladder=gpt_tiny")  # bytes: 256 whatever the text holds
    resolve_vocabulary(text)
    assert text.model.vocab_size == 256
    given = compose_config("+ladder=gpt_tiny", "model.vocab_size=320")
    resolve_vocabulary(given)
    assert given.model.vocab_size == 320


def test_a_job_handed_a_raw_config_resolves_its_vocabulary():
    raw = plain(compose_config("+ladder=gpt_tiny"))
    assert raw["model"]["vocab_size"] is None
    assert job_config(raw).model.vocab_size == 256


def test_a_padded_vocabulary_builds_and_trains(corpus):
    cfg = compose_config("+ladder=gpt_tiny", "model.vocab_size=320")
    run = run_config(cfg, 32, "mup", dict(cfg.ladder.hparams), steps=2, seed=0)
    assert run.model.vocab_size == 320
    result, model = train(run, corpus)
    assert result.status == "completed"
    logits = model(torch.zeros(1, 8, dtype=torch.long))
    assert logits.shape[-1] == 320
