from dataclasses import replace

import pytest

from sweep.core.flops import flops_per_token, non_embedding_params, training_flops
from sweep.core.model import GPT, GPTConfig


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"tie_embeddings": True},
        {"head_scaling": "size", "d_model": 128},
        {"d_model": 72, "mlp_width": 100, "head_count": 3, "key_size": 5, "value_size": 9},
    ],
)
def test_non_embedding_params_counts_the_model(overrides):
    cfg = replace(GPTConfig(d_model=64, base_d_model=64, d_head=16, n_layer=3), **overrides)
    model = GPT(cfg)
    counted = sum(
        p.numel() for n, p in model.named_parameters() if n not in ("wte.weight", "wpe.weight")
    )
    readout_compute = cfg.d_model * cfg.vocab_size if cfg.tie_embeddings else 0
    assert non_embedding_params(cfg) == counted + readout_compute


def test_training_flops_formula():
    cfg = GPTConfig(d_model=64, d_head=16, n_layer=2, seq_len=32)
    n = non_embedding_params(cfg)
    assert flops_per_token(cfg) == 6 * n + 6 * 2 * 32 * 64
    assert training_flops(cfg, 1000) == 1000 * flops_per_token(cfg)
