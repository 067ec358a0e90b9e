import math
from dataclasses import replace

import pytest
import torch

from sweep.core.model import GPT, GPTConfig, lm_loss

CFG = GPTConfig(d_model=32, d_head=8, seq_len=16, n_layer=2, zero_query=False)


def test_logits_shape_and_initial_loss_near_uniform():
    model = GPT(CFG)
    idx = torch.randint(0, 256, (3, 16))
    assert model(idx).shape == (3, 16, 256)
    assert abs(lm_loss(model, idx, idx).item() - math.log(256)) < 1.0
    # a zero readout makes every logit exactly 0: the loss is exactly that of the uniform guess
    zero = GPT(replace(CFG, zero_readout=True))
    assert torch.count_nonzero(zero(idx)) == 0
    assert lm_loss(zero, idx, idx).item() == pytest.approx(math.log(256), rel=1e-6)


def test_attention_is_causal():
    model = GPT(CFG)
    idx = torch.randint(0, 256, (1, 16))
    changed = idx.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 256
    torch.testing.assert_close(model(idx)[0, :10], model(changed)[0, :10])
    assert not torch.allclose(model(idx)[0, 10:], model(changed)[0, 10:])


# Tokens 0..31 feed the model; rows 32.. of the embedding are reached only through a tied readout.
IDX = torch.arange(32).view(2, 16)
UNSEEN = 250  # a token that never appears in IDX


def test_no_biases():
    for tie in (False, True):
        names = [name for name, _ in GPT(replace(CFG, tie_embeddings=tie)).named_parameters()]
        assert not any(name.endswith("bias") for name in names), names


def test_tied_readout_is_the_token_embedding():
    """Tied: one tensor both embeds and reads out, so editing an embedding row moves its logit,
    and the readout's gradient trains embedding rows of tokens that never occur in the input."""
    model = GPT(replace(CFG, tie_embeddings=True))
    assert model.readout is None and "readout.weight" not in dict(model.named_parameters())
    assert model.readout_weight.data_ptr() == model.wte.weight.data_ptr()
    before = model(IDX).detach()
    with torch.no_grad():
        model.wte.weight[UNSEEN] = 0.0
    after = model(IDX).detach()
    assert torch.all(after[..., UNSEEN] == 0) and before[..., UNSEEN].abs().max() > 0
    others = torch.arange(256) != UNSEEN
    assert torch.equal(after[..., others], before[..., others])  # the hidden states did not move
    lm_loss(model, IDX, IDX.roll(1, 1)).backward()
    assert model.wte.weight.grad[UNSEEN].abs().max() > 0


def test_untied_readout_is_a_separate_parameter():
    """Untied: the embedding row of an unseen token reaches no logit and gets no gradient; an
    optimizer step moves the readout but leaves every unseen embedding row untouched."""
    model = GPT(CFG)
    assert model.readout_weight.data_ptr() != model.wte.weight.data_ptr()
    before = model(IDX).detach()
    with torch.no_grad():
        model.wte.weight[UNSEEN] = 0.0
    assert torch.equal(model(IDX).detach(), before)  # an unseen embedding row changes nothing
    with torch.no_grad():
        model.readout.weight[UNSEEN] = 0.0
    assert torch.all(model(IDX)[..., UNSEEN] == 0)
    wte, readout = model.wte.weight.detach().clone(), model.readout.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    lm_loss(model, IDX, IDX.roll(1, 1)).backward()
    optimizer.step()
    assert torch.equal(model.wte.weight[32:], wte[32:])  # no gradient from the readout
    assert not torch.equal(model.wte.weight[:32], wte[:32])  # the seen rows do train
    assert not torch.equal(model.readout.weight, readout)


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


def test_explicit_dimensions_override_the_ladder():
    cfg = replace(
        CFG, d_model=40, base_d_model=32, mlp_width=48, head_count=3, key_size=5, value_size=7
    )
    assert (cfg.d_mlp, cfg.n_heads, cfg.d_key, cfg.d_value) == (48, 3, 5, 7)
    shapes = {k: tuple(v.shape) for k, v in GPT(cfg).state_dict().items()}
    assert shapes["blocks.0.attn.q.weight"] == shapes["blocks.0.attn.k.weight"] == (15, 40)
    assert shapes["blocks.0.attn.v.weight"] == (21, 40)
    assert shapes["blocks.0.attn.proj.weight"] == (40, 21)
    assert shapes["blocks.0.mlp.fc.weight"] == (48, 40)
    assert GPT(cfg)(torch.zeros(1, 4, dtype=torch.long)).shape == (1, 4, 256)
    # unset, every dimension is the ladder's; at_width drops the overrides
    assert cfg.at_width(64) == CFG.at_width(64)
    assert (CFG.d_key, CFG.d_value, CFG.head_size) == (8, 8, 8)


@pytest.mark.parametrize("field", ["mlp_width", "head_count", "key_size", "value_size"])
@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_bad_override_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"model\\.{field}"):
        replace(CFG, **{field: value})
