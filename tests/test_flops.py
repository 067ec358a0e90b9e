from dataclasses import replace

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from sweep.core.flops import non_embedding_params, training_flops
from sweep.core.model import GPT, GPTConfig, lm_loss


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


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"tie_embeddings": True, "n_layer": 3},
        {"d_model": 72, "mlp_width": 100, "head_count": 3, "key_size": 5, "value_size": 9},
    ],
)
def test_training_flops_match_a_flop_counter_on_one_step(overrides):
    """Count the matmul FLOPs of one real forward + backward (math attention, so the counter
    sees the score and value products). The counter prices the full T×T score matrix and skips
    the elementwise RMSNorm gains; the formula counts the causal half and 6 FLOPs per gain."""
    cfg = replace(GPTConfig(d_model=64, base_d_model=64, d_head=16, seq_len=24), **overrides)
    model = GPT(cfg)
    batch, tokens = 3, 3 * cfg.seq_len
    idx = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        lm_loss(model, idx, idx).backward()
    counts = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    dense, attention = counts.pop("aten.mm"), counts.pop("aten.bmm")
    assert counts == {}  # nothing else was counted
    gains = sum(p.numel() for p in model.parameters() if p.ndim == 1)
    assert training_flops(cfg, tokens) == dense + attention // 2 + 6 * gains * tokens
