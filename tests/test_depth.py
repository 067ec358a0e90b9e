"""CompleteP depth parametrization: branch multipliers, depth LR, and a depth coordinate check."""

from dataclasses import replace

import pytest
import torch

from sweep.core import parametrization as P
from sweep.core.model import GPT, GPTConfig, lm_loss
from sweep.core.train import OptimConfig, make_optimizer

CFG = GPTConfig(vocab_size=64, seq_len=16, n_layer=2, d_model=32, d_head=8, zero_query=False)
IDX = torch.randint(0, 64, (4, 17), generator=torch.Generator().manual_seed(1))


def train(cfg: GPTConfig, steps: int, lr: float = 1e-2) -> tuple[GPT, list[float]]:
    torch.manual_seed(0)
    model = GPT(cfg).double()
    optimizer = make_optimizer(model, OptimConfig(lr=lr, weight_decay=0.1))
    losses = []
    for _ in range(steps):
        loss = lm_loss(model, IDX[:, :-1], IDX[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model, losses


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_at_the_base_depth_the_model_is_unchanged_bit_for_bit(alpha):
    """base_n_layer = n_layer multiplies by exactly 1: same init, losses and weights as unset."""
    plain, plain_losses = train(CFG, 3)
    deep, deep_losses = train(replace(CFG, base_n_layer=CFG.n_layer, depth_alpha=alpha), 3)
    assert deep.blocks[0].residual_mult == 1.0 and plain.blocks[0].residual_mult == 1.0
    assert deep_losses == plain_losses
    for (name, a), b in zip(plain.state_dict().items(), deep.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("alpha", [0.5, 1.0])
@pytest.mark.parametrize("n_layer", [2, 8, 32])
def test_branch_and_lr_multipliers(alpha, n_layer):
    cfg = replace(CFG, n_layer=n_layer, base_n_layer=2, depth_alpha=alpha).at_width(64)
    ratio = n_layer / 2
    assert P.residual_multiplier(cfg) == pytest.approx(ratio**-alpha, rel=1e-15)
    hidden, vector = P.lr_multiplier(cfg, P.Role.HIDDEN), P.lr_multiplier(cfg, P.Role.VECTOR)
    assert hidden == pytest.approx(ratio ** (alpha - 1) * 32 / 64, rel=1e-15)
    assert vector == 1.0 and P.lr_multiplier(cfg, P.Role.OUTPUT) == 1.0
    assert hidden * P.wd_multiplier(cfg, P.Role.HIDDEN) == pytest.approx(1.0, rel=1e-15)
    assert all(block.residual_mult == P.residual_multiplier(cfg) for block in GPT(cfg).blocks)
    groups = make_optimizer(GPT(cfg), OptimConfig(lr=1e-3)).param_groups
    assert {g["role"]: g["lr"] for g in groups}["hidden"] == pytest.approx(1e-3 * hidden)


def test_branch_outputs_are_multiplied():
    """The forward applies the multiplier to both branches: a hand-rolled block agrees."""
    cfg = replace(CFG, n_layer=8, base_n_layer=2)
    block = GPT(cfg).blocks[3]
    x = torch.randn(2, 16, 32)
    r = 0.25
    y = x + r * block.attn(block.norm_attn(x))
    expected = y + r * block.mlp(block.norm_mlp(y))
    torch.testing.assert_close(block(x), expected, rtol=0, atol=0)


def _residual_scales(cfg: GPTConfig, steps: int = 5) -> tuple[float, float]:
    """mean |x| of the last residual stream after `steps` Adam steps, and of its change."""
    torch.manual_seed(0)
    model = GPT(cfg).double()
    seen = {}
    model.norm_f.register_forward_hook(lambda m, i, o: seen.__setitem__("x", i[0].detach()))
    model(IDX[:, :-1])
    before = seen["x"]
    optimizer = make_optimizer(model, OptimConfig(lr=1e-2, weight_decay=0.0))
    for _ in range(steps):
        loss = lm_loss(model, IDX[:, :-1], IDX[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model(IDX[:, :-1])
    return seen["x"].abs().mean().item(), (seen["x"] - before).abs().mean().item()


def test_depth_coordinate_check():
    """Depth 2 -> 8 at a large LR: without depth scaling the residual stream and its update grow
    with L (measured ~2.3x and ~2.6x); with CompleteP (α = 1) they stay put (~0.8x)."""
    for base_n_layer, low, high in ((None, 1.8, float("inf")), (2, 0.5, 1.25)):
        shallow = _residual_scales(replace(CFG, n_layer=2, base_n_layer=base_n_layer))
        deep = _residual_scales(replace(CFG, n_layer=8, base_n_layer=base_n_layer))
        for s, d in zip(shallow, deep, strict=True):
            assert low < d / s < high, (base_n_layer, shallow, deep)


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"depth_alpha": 0.4}, "model.depth_alpha"),
        ({"depth_alpha": 1.5}, "model.depth_alpha"),
        ({"base_n_layer": 0}, "model.base_n_layer"),
    ],
)
def test_bad_depth_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        replace(CFG, **overrides)
