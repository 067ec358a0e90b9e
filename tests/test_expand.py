"""The six function-preserving growth operators (`sweep.grow.function_preserving`) and depth
stacking (`sweep.grow.stack`)."""

import math
from dataclasses import replace

import pytest
import torch
from exactness import TOL, logits, max_diff, shapes

from sweep.core import parametrization as P
from sweep.core.model import GPT, GPTConfig
from sweep.grow import function_preserving as E
from sweep.grow.stack import stack_layers
from sweep.grow.state import fresh_init, state_shapes

pytestmark = pytest.mark.usefixtures("one_thread")

SRC = GPTConfig(
    vocab_size=64, seq_len=16, n_layer=2, d_model=32, base_d_model=16, d_head=8, zero_query=False
)

CONFIGS = {
    "mup-count": {},
    "mup-size": {"head_scaling": "size"},
    "mup-count-tied": {"tie_embeddings": True, "zero_query": True},
    "mup-size-tied-alphas": {
        "head_scaling": "size",
        "tie_embeddings": True,
        "alpha_in": 2.0,
        "alpha_out": 1.5,
        "alpha_attn": 0.7,
    },
    "sp-count": {"parametrization": "sp"},
    "sp-size-tied": {"parametrization": "sp", "head_scaling": "size", "tie_embeddings": True},
    "mup-completep-0.5": {"base_n_layer": 2, "depth_alpha": 0.5},
    "sp-size-completep-1": {"parametrization": "sp", "head_scaling": "size", "base_n_layer": 1},
}


def _compose(state, cfg, **kw):
    """Every operator in turn, each fed the previous one's output."""
    state, cfg = E.grow_hidden(state, cfg, cfg.d_model + 24, **kw)
    state, cfg = E.grow_inner(state, cfg, mlp_width=cfg.d_mlp + 20, **kw)
    state, cfg = E.grow_inner(state, cfg, head_count=cfg.n_heads + 3, **kw)
    state, cfg = E.grow_inner(state, cfg, key_size=cfg.d_key + 6, **kw)
    state, cfg = E.grow_inner(state, cfg, value_size=cfg.d_value + 5, **kw)
    state, cfg = E.add_layer(state, cfg, 0, **kw)
    return E.add_layer(state, cfg, cfg.n_layer, **kw)


OPS = {
    "mlp": lambda s, c, **kw: E.grow_inner(s, c, mlp_width=c.d_mlp + 24, **kw),
    "heads": lambda s, c, **kw: E.grow_inner(s, c, head_count=c.n_heads + 3, **kw),
    "value": lambda s, c, **kw: E.grow_inner(s, c, value_size=c.d_value + 5, **kw),
    "key": lambda s, c, **kw: E.grow_inner(s, c, key_size=c.d_key + 6, **kw),
    "hidden": lambda s, c, **kw: E.grow_hidden(s, c, c.d_model + 24, **kw),
    "layer": lambda s, c, **kw: E.add_layer(s, c, 1, **kw),
    "all": _compose,
}


def random_state(cfg: GPTConfig, dtype: torch.dtype, seed: int = 0) -> dict:
    """Non-zero weights everywhere, as after training: gains away from 1, q and readout random."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in state_shapes(cfg).items():
        t = torch.randn(shape, generator=gen, dtype=torch.float64)
        if len(shape) == 1:
            t = 1.0 + 0.5 * t
        elif name not in ("wte.weight", "wpe.weight"):
            t = t / math.sqrt(shape[1])
        state[name] = t.to(dtype)
    return state


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("config", CONFIGS)
def test_operator_preserves_the_function(config, op, dtype):
    cfg = replace(SRC, **CONFIGS[config])
    src = random_state(cfg, dtype)
    grown, new_cfg = OPS[op](src, cfg, init="random", seed=3)
    assert shapes(grown) == shapes(GPT(new_cfg).state_dict()) != shapes(src)
    assert all(t.dtype == dtype for t in grown.values())
    assert max_diff(logits(cfg, src, dtype), logits(new_cfg, grown, dtype), dtype) <= TOL[dtype]


def test_zero_init_composition_preserves_the_function():
    cfg = replace(SRC, **CONFIGS["mup-completep-0.5"])
    src = random_state(cfg, torch.float64)
    grown, new_cfg = _compose(src, cfg, init="zero", seed=0)
    expected = logits(cfg, src, torch.float64)
    assert max_diff(expected, logits(new_cfg, grown, torch.float64), torch.float64) <= 1e-10


def test_free_entries_come_from_the_grown_configs_init():
    src = random_state(SRC, torch.float64)
    grown, new_cfg = E.grow_inner(src, SRC, mlp_width=200, init="random", seed=5)
    fresh = fresh_init(new_cfg, 5)
    fc = "blocks.1.mlp.fc.weight"
    assert torch.equal(grown[fc][128:], fresh[fc][128:].double())
    assert torch.equal(grown[fc][:128], src[fc])
    zero, _ = E.grow_inner(src, SRC, mlp_width=200, init="zero", seed=5)
    assert torch.count_nonzero(zero[fc][128:]) == 0
    again, _ = E.grow_inner(src, SRC, mlp_width=200, init="random", seed=5)
    assert all(torch.equal(again[n], grown[n]) for n in grown)
    # key growth: new k coordinates free, the old heads' new q coordinates zero
    grown, new_cfg = E.grow_inner(src, SRC, key_size=12, init="random", seed=5)
    q = grown["blocks.0.attn.q.weight"].view(4, 12, 32)
    k = grown["blocks.0.attn.k.weight"].view(4, 12, 32)
    assert torch.count_nonzero(q[:, 8:]) == 0 and torch.count_nonzero(k[:, 8:]) == k[:, 8:].numel()
    ratio = P.attention_scale(SRC) / P.attention_scale(new_cfg)
    assert ratio == pytest.approx(12 / 8)  # µP's 1/k: k̂/k
    torch.testing.assert_close(q[:, :8], ratio * src["blocks.0.attn.q.weight"].view(4, 8, 32))


def _noise(t: torch.Tensor) -> torch.Tensor:
    return torch.randn(t.shape, generator=torch.Generator().manual_seed(9), dtype=t.dtype)


def _break_mlp(s, old, new):
    s["blocks.0.mlp.proj.weight"][:, old.d_mlp :] = 1.0


def _break_heads(s, old, new):
    proj = s["blocks.1.attn.proj.weight"]
    proj[:, old.n_heads * old.d_value :] = _noise(proj[:, old.n_heads * old.d_value :])


def _break_value(s, old, new):
    proj = s["blocks.0.attn.proj.weight"].view(new.d_model, new.n_heads, new.d_value)
    proj[:, :, old.d_value :] = _noise(proj[:, :, old.d_value :])


def _break_key(s, old, new):
    q = s["blocks.0.attn.q.weight"].view(new.n_heads, new.d_key, new.d_model)
    q[:, old.d_key :] = _noise(q[:, old.d_key :])


def _unscale_query(s, old, new):
    s["blocks.1.attn.q.weight"] /= P.attention_scale(old) / P.attention_scale(new)


def _break_embedding(s, old, new):
    s["wpe.weight"][:, old.d_model :] = _noise(s["wpe.weight"][:, old.d_model :])


def _break_residual_writer(s, old, new):
    s["blocks.1.mlp.proj.weight"][old.d_model :] = 0.1


def _unscale_gain(s, old, new):
    s["blocks.0.norm_mlp.weight"][: old.d_model] /= math.sqrt(old.d_model / new.d_model)


def _break_new_block(s, old, new):
    s["blocks.1.attn.proj.weight"] = _noise(s["blocks.1.attn.proj.weight"])


def _unscale_branches(s, old, new):
    for name in ("blocks.0.mlp.proj.weight", "blocks.2.attn.proj.weight"):
        s[name] /= P.residual_multiplier(old) / P.residual_multiplier(new)


BREAKS = [
    ("mlp", _break_mlp, {}),
    ("heads", _break_heads, {}),
    ("value", _break_value, {"head_scaling": "size"}),
    ("key", _break_key, {}),
    ("key", _unscale_query, {"parametrization": "sp"}),
    ("hidden", _break_embedding, {}),
    ("hidden", _break_residual_writer, {}),
    ("hidden", _unscale_gain, {"tie_embeddings": True}),
    ("layer", _break_new_block, {}),
    ("layer", _unscale_branches, {"base_n_layer": 2, "depth_alpha": 1.0}),
]


@pytest.mark.parametrize("op,breaker,overrides", BREAKS, ids=[b[1].__name__ for b in BREAKS])
def test_breaking_a_constraint_changes_the_logits(op, breaker, overrides):
    """Each zero constraint and rescaling is needed: undoing one shows in the logits."""
    cfg = replace(SRC, **overrides)
    src = random_state(cfg, torch.float64)
    grown, new_cfg = OPS[op](src, cfg, init="random", seed=3)
    expected = logits(cfg, src, torch.float64)
    assert max_diff(expected, logits(new_cfg, grown, torch.float64), torch.float64) <= 1e-10
    broken = {k: v.clone() for k, v in grown.items()}
    breaker(broken, cfg, new_cfg)
    assert (expected - logits(new_cfg, broken, torch.float64)).abs().max() > 1e-3


def test_add_layer_places_an_identity_block_and_renumbers():
    cfg = replace(SRC, n_layer=3, base_n_layer=2)
    src = random_state(cfg, torch.float64)
    grown, new_cfg = E.add_layer(src, cfg, 1, init="random", seed=0)
    assert new_cfg.n_layer == 4
    r = P.residual_multiplier(cfg) / P.residual_multiplier(new_cfg)
    assert r == pytest.approx(4 / 3)  # α = 1: (2/3) / (2/4)
    assert torch.equal(grown["blocks.0.mlp.fc.weight"], src["blocks.0.mlp.fc.weight"])
    assert torch.equal(grown["blocks.3.attn.q.weight"], src["blocks.2.attn.q.weight"])
    torch.testing.assert_close(
        grown["blocks.2.mlp.proj.weight"], r * src["blocks.1.mlp.proj.weight"], rtol=1e-15, atol=0
    )
    for name in ("attn.proj.weight", "mlp.proj.weight"):
        assert torch.count_nonzero(grown[f"blocks.1.{name}"]) == 0
    assert torch.count_nonzero(grown["blocks.1.attn.k.weight"]) > 0


@pytest.mark.parametrize("tie", [False, True])
def test_stack_layers_repeats_the_whole_stack(tie):
    cfg = replace(SRC, tie_embeddings=tie)
    src = random_state(cfg, torch.float64)
    grown, new_cfg = stack_layers(src, cfg, 3)
    assert new_cfg.n_layer == 6
    assert shapes(grown) == shapes(GPT(new_cfg).state_dict())
    for j in range(6):
        for rest in ("attn.q.weight", "mlp.proj.weight", "norm_attn.weight"):
            name = f"blocks.{j}.{rest}"
            assert torch.equal(grown[name], src[f"blocks.{j % 2}.{rest}"])
            assert grown[name].data_ptr() != src[f"blocks.{j % 2}.{rest}"].data_ptr()
    assert torch.isfinite(logits(new_cfg, grown, torch.float64)).all()


BAD = [
    (lambda s, c: E.grow_inner(s, c, mlp_width=64), "model.mlp_width"),
    (lambda s, c: E.grow_inner(s, c, mlp_width=0), "model.mlp_width"),
    (lambda s, c: E.grow_inner(s, c, head_count=2), "model.head_count"),
    (lambda s, c: E.grow_inner(s, c, value_size=4), "model.value_size"),
    (lambda s, c: E.grow_inner(s, c, key_size=4), "model.key_size"),
    (lambda s, c: E.grow_hidden(s, c, 24), "model.d_model"),
    (lambda s, c: E.grow_inner(s, c, d_model=128), "grow_hidden's"),
    (lambda s, c: E.grow_inner(s, c, mlp_width=200, init="normal"), "init must be"),
    (lambda s, c: E.add_layer(s, c, 3), "position"),
    (lambda s, c: E.add_layer(s, c, -1), "position"),
    (lambda s, c: E.add_layer(s, c, 0, init="ones"), "init must be"),
    (lambda s, c: stack_layers(s, c, 0), "times"),
    (lambda s, c: E.grow_inner(s, replace(c, mlp_ratio=2.0), mlp_width=200), "source state"),
    (lambda s, c: E.add_layer(s, replace(c, n_layer=3), 0), "source state"),
    (lambda s, c: stack_layers(s, replace(c, d_model=48), 2), "source state"),
]


@pytest.mark.parametrize("grow,message", BAD)
def test_bad_input_is_a_clear_value_error(grow, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        grow(random_state(SRC, torch.float64), SRC)
