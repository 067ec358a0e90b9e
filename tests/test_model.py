from dataclasses import replace

import pytest
import torch

from sweep.model import GPT, GPTConfig, lm_loss

CFG = GPTConfig(d_model=32, d_head=8, seq_len=16, n_layer=2, zero_query=False)


def test_logits_shape_and_initial_loss_near_uniform():
    model = GPT(CFG)
    idx = torch.randint(0, 256, (3, 16))
    assert model(idx).shape == (3, 16, 256)
    assert abs(lm_loss(model, idx, idx).item() - torch.log(torch.tensor(256.0)).item()) < 1.0


def test_attention_is_causal():
    model = GPT(CFG)
    idx = torch.randint(0, 256, (1, 16))
    changed = idx.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 256
    torch.testing.assert_close(model(idx)[0, :10], model(changed)[0, :10])
    assert not torch.allclose(model(idx)[0, 10:], model(changed)[0, 10:])


def test_no_biases_and_untied_by_default():
    model = GPT(CFG)
    assert not any(name.endswith("bias") for name, _ in model.named_parameters())
    assert model.readout_weight is not model.wte.weight
    assert GPT(replace(CFG, tie_embeddings=True)).readout_weight is not None


@pytest.mark.parametrize(
    "scaling,width,heads,head_size", [("count", 64, 8, 8), ("size", 64, 4, 16)]
)
def test_width_like_dimensions_scale(scaling, width, heads, head_size):
    cfg = replace(CFG, head_scaling=scaling).at_width(width)
    assert (cfg.n_heads, cfg.head_size, cfg.d_mlp) == (heads, head_size, 4 * width)
    assert GPT(cfg)(torch.zeros(1, 4, dtype=torch.long)).shape == (1, 4, 256)


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"d_model": 36, "base_d_model": 32}, "model.d_model"),
        ({"d_model": 36}, "model.base_d_model"),
        ({"d_model": 16, "base_d_model": 32}, "model.base_d_model"),
        ({"parametrization": "ntk"}, "model.parametrization"),
        ({"head_scaling": "depth"}, "model.head_scaling"),
        ({"n_layer": 0}, "model.n_layer"),
        ({"seq_len": -1}, "model.seq_len"),
        ({"mlp_ratio": 1.01}, "model.mlp_ratio"),
        ({"init_std": -1.0}, "model.init_std"),
    ],
)
def test_bad_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        replace(CFG, **overrides)


def test_sequence_longer_than_context_is_refused():
    with pytest.raises(ValueError, match="seq_len"):
        GPT(CFG)(torch.zeros(1, 17, dtype=torch.long))
