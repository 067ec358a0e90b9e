"""Growing a proxy to a wider target: pad0 placement, function preservation, warmstart noise."""

import functools
import math
from dataclasses import replace

import pytest
import torch
from exactness import IDX, TOL, logits, max_diff, shapes

from sweep.core import parametrization as P
from sweep.core.model import GPT, GPTConfig, RMSNorm, lm_loss
from sweep.grow.pad import HeadLayout, grow_state, head_layout_of, pad_to
from sweep.grow.shrink_pad_perturb import shrink_pad_perturb
from sweep.grow.state import state_shapes

pytestmark = pytest.mark.usefixtures("one_thread")

SRC = GPTConfig(vocab_size=64, seq_len=16, n_layer=2, d_model=32, d_head=8, alpha_out=1.5)


@functools.cache
def _trained_state(cfg: GPTConfig, dtype: torch.dtype) -> dict:
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GPT(cfg).to(dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(3):
        idx = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len), generator=gen)
        lm_loss(model, idx, idx.roll(1, 1)).backward()
        opt.step()
        opt.zero_grad()
    return {k: v.clone() for k, v in model.state_dict().items()}


def trained(cfg: GPTConfig, dtype=torch.float32) -> GPT:
    """A GPT moved away from its init by 3 AdamW steps on random tokens (cached per config)."""
    model = GPT(cfg).to(dtype)
    model.load_state_dict(_trained_state(cfg, dtype))
    return model


@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("scaling", ["count", "size"])
def test_grown_shapes_equal_target_model(scaling, tie):
    src_cfg = replace(SRC, head_scaling=scaling, tie_embeddings=tie)
    tgt_cfg = src_cfg.at_width(96)
    target = shapes(GPT(tgt_cfg).state_dict())
    assert state_shapes(tgt_cfg) == target
    state = GPT(src_cfg).state_dict()
    assert shapes(grow_state(state, src_cfg, tgt_cfg)) == target
    spp = shrink_pad_perturb(state, src_cfg, tgt_cfg, shrink=0.4, perturb=0.1, seed=0)
    assert shapes(spp) == target
    assert ("readout.weight" in target) is not tie


def test_pad_to_per_head_by_hand():
    src = torch.arange(1.0, 13.0).reshape(4, 3)  # 2 heads of size 2, 3 columns
    out = pad_to(src, (6, 4), HeadLayout(0, 2, 2))  # 2 heads of size 3, 4 columns
    expected = torch.zeros(6, 4)
    expected[0:2, :3] = src[0:2]  # head 0
    expected[3:5, :3] = src[2:4]  # head 1
    assert torch.equal(out, expected)
    plain = torch.zeros(6, 4)
    plain[:4, :3] = src
    assert torch.equal(pad_to(src, (6, 4)), plain)
    # columns (attn.proj): head-major along axis 1
    assert torch.equal(pad_to(src.T, (4, 6), (1, 2, 2)), expected.T)
    # more heads of the same size: per-head padding is the plain leading block
    assert torch.equal(pad_to(src, (8, 4), HeadLayout(0, 2, 4)), pad_to(src, (8, 4)))


@pytest.mark.parametrize(
    "shape,layout",
    [((3, 4), None), ((4, 2), None), ((4, 3, 1), None), ((6, 3), HeadLayout(0, 3, 3))],
)
def test_pad_to_rejects_smaller_or_mismatched_targets(shape, layout):
    with pytest.raises(ValueError, match="pad_to"):
        pad_to(torch.ones(4, 3), shape, layout)


def _factor(name: str, src_cfg: GPTConfig, tgt_cfg: GPTConfig) -> float:
    """The rescaling of the copied block, written out by hand for µP at_width growth."""
    d, D = src_cfg.d_model, tgt_cfg.d_model
    if name == "readout.weight":
        return D / d  # α_out/m: m grows by D/d
    if name.endswith("attn.q.weight"):
        return tgt_cfg.head_size / src_cfg.head_size  # µP 1/h
    if name == "norm_f.weight" and src_cfg.tie_embeddings:
        return math.sqrt(d / D) * D / d
    if name.endswith("norm_attn.weight") or name.endswith("norm_mlp.weight") or "norm_f" in name:
        return math.sqrt(d / D)
    return 1.0


QKV = ("attn.q.weight", "attn.k.weight", "attn.v.weight")


def _heads(t: torch.Tensor, name: str, n_heads: int) -> torch.Tensor:
    """q/k/v (H*h, d) -> (H, h, d); attn.proj (d, H*h) -> (H, h, d)."""
    if name.endswith("attn.proj.weight"):
        t = t.T
    return t.reshape(n_heads, -1, t.shape[-1])


@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("scaling", ["count", "size"])
def test_source_sits_in_the_leading_block_per_head(scaling, tie):
    """λ = 1, σ = 0: each tensor is the source in its leading block (per head), times the
    hand-written rescaling, and zero elsewhere."""
    src_cfg = replace(SRC, head_scaling=scaling, tie_embeddings=tie, zero_query=False)
    tgt_cfg = src_cfg.at_width(96)
    src = trained(src_cfg, torch.float64).state_dict()
    grown = shrink_pad_perturb(src, src_cfg, tgt_cfg, shrink=1.0, perturb=0.0, seed=0)
    assert grown.keys() == src.keys()
    for name, t in src.items():
        g = grown[name] / _factor(name, src_cfg, tgt_cfg)
        if name.endswith((*QKV, "attn.proj.weight")):
            g, t = _heads(g, name, tgt_cfg.n_heads), _heads(t, name, src_cfg.n_heads)
        lead = tuple(slice(0, s) for s in t.shape)
        torch.testing.assert_close(g[lead], t, rtol=1e-15, atol=0)
        g[lead] = 0
        assert torch.count_nonzero(g) == 0, name
        assert torch.count_nonzero(t) > 0, name


def test_size_scaling_pads_each_head_not_the_flat_rows():
    src_cfg = replace(SRC, head_scaling="size", zero_query=False)
    tgt_cfg = src_cfg.at_width(64)  # 4 heads of size 8 -> 4 heads of size 16
    src = GPT(src_cfg).state_dict()
    grown = grow_state(src, src_cfg, tgt_cfg)
    k = src["blocks.0.attn.k.weight"]  # (32, 32)
    # head 1 (source rows 8:16) lands at target rows 16:24, not 8:16
    torch.testing.assert_close(grown["blocks.0.attn.k.weight"][16:24, :32], k[8:16])
    assert torch.count_nonzero(grown["blocks.0.attn.k.weight"][8:16]) == 0
    proj = grown["blocks.0.attn.proj.weight"]  # (64, 64): columns head-major
    torch.testing.assert_close(proj[:32, 16:24], src["blocks.0.attn.proj.weight"][:, 8:16])
    assert not torch.equal(grown["blocks.0.attn.k.weight"], pad_to(k, (64, 64)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("width", [64, 96])
@pytest.mark.parametrize(
    "overrides",
    [
        {"head_scaling": "count", "zero_query": False},
        {"head_scaling": "count"},  # zero_query=True: q is trained away from 0
        {"head_scaling": "size", "zero_query": False},
        {"head_scaling": "size"},
        {"head_scaling": "count", "tie_embeddings": True, "zero_query": False},
        {"head_scaling": "size", "tie_embeddings": True},
        {"head_scaling": "size", "parametrization": "sp", "zero_query": False},
        {"head_scaling": "size", "mlp_ratio": 2.0, "alpha_attn": 0.7, "alpha_in": 2.0},
    ],
)
def test_growth_preserves_the_function(overrides, width, dtype):
    src_cfg = replace(SRC, **overrides)
    tgt_cfg = src_cfg.at_width(width)
    source = trained(src_cfg, dtype)
    src = source.state_dict()
    assert torch.count_nonzero(src["blocks.0.attn.q.weight"]) > 0
    grown = shrink_pad_perturb(src, src_cfg, tgt_cfg, shrink=1.0, perturb=0.0, seed=3)
    with torch.no_grad():
        expected = source(IDX)
    got = logits(tgt_cfg, grown, dtype)
    assert got.dtype == dtype
    assert max_diff(expected, got, dtype) <= TOL[dtype]
    torch.testing.assert_close(grow_state(src, src_cfg, tgt_cfg), grown, rtol=0, atol=0)


@pytest.mark.parametrize("tie", [False, True])
def test_norm_eps_is_negligible_so_padding_is_exact(tie):
    """Padding divides the mean square by D/d; an eps of 1e-6 would not be (difference 0.88 at
    these activations, far below unit scale), a negligible one is preserved to round-off."""
    src_cfg = replace(SRC, head_scaling="size", tie_embeddings=tie, zero_query=False, alpha_in=1e-3)
    tgt_cfg = src_cfg.at_width(96)
    assert RMSNorm(1, P.norm_eps(tgt_cfg)).eps < 1e-30
    assert P.norm_eps(tgt_cfg) == torch.finfo(torch.float32).tiny  # the rule table's, torch-free
    source = trained(src_cfg, torch.float64)
    with torch.no_grad():
        expected = source(IDX)
    got = logits(tgt_cfg, grow_state(source.state_dict(), src_cfg, tgt_cfg), torch.float64)
    assert max_diff(expected, got, torch.float64) <= TOL[torch.float64]


# (tensors to undo the rescaling on, which config): each rescaling is needed
UNDO = [
    (("readout.weight",), {}),
    (("norm_f.weight",), {"tie_embeddings": True}),  # the tied readout's factor lives here
    (("attn.q.weight",), {"head_scaling": "size"}),
    (("norm_attn.weight", "norm_mlp.weight"), {}),
    (("norm_f.weight",), {}),
]


@pytest.mark.parametrize("suffixes,overrides", UNDO)
def test_dropping_any_rescaling_changes_the_logits(suffixes, overrides):
    src_cfg = replace(SRC, zero_query=False, **overrides)
    tgt_cfg = src_cfg.at_width(64)
    source = trained(src_cfg, torch.float64)
    src = source.state_dict()
    grown = grow_state(src, src_cfg, tgt_cfg)
    with torch.no_grad():
        expected = source(IDX)
    assert max_diff(expected, logits(tgt_cfg, grown, torch.float64), torch.float64) <= 1e-10
    undone = dict(grown)
    touched = 0
    for name in grown:
        if name.endswith(suffixes):
            undone[name] = grown[name] / _factor(name, src_cfg, tgt_cfg)
            touched += 1
    assert touched and not all(torch.equal(undone[n], grown[n]) for n in grown)
    assert (expected - logits(tgt_cfg, undone, torch.float64)).abs().max() > 1e-4
    # pad_to alone (no rescaling at all) does not preserve the function either
    layout = {n: head_layout_of(n, src_cfg, tgt_cfg) for n in src}
    shapes_t = state_shapes(tgt_cfg)
    padded = {n: pad_to(t, shapes_t[n], layout[n]) for n, t in src.items()}
    assert (expected - logits(tgt_cfg, padded, torch.float64)).abs().max() > 1e-4


def test_shrink_pad_perturb_is_shrunk_pad_plus_scaled_fresh_init():
    src_cfg = replace(SRC, head_scaling="size", zero_query=False)
    tgt_cfg = src_cfg.at_width(96)
    src = trained(src_cfg).state_dict()
    lam, sigma, seed = 0.4, 0.1, 7
    got = shrink_pad_perturb(src, src_cfg, tgt_cfg, shrink=lam, perturb=sigma, seed=seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        init = GPT(tgt_cfg).state_dict()
    padded = grow_state({k: lam * v for k, v in src.items()}, src_cfg, tgt_cfg)
    for name in init:
        assert torch.equal(got[name], padded[name] + sigma * init[name]), name
    # the old block is λ·(rescaled source) + σ·init, the new block σ·init alone
    q = "blocks.1.attn.q.weight"
    ratio = tgt_cfg.head_size / src_cfg.head_size
    head0 = slice(0, src_cfg.head_size)
    torch.testing.assert_close(
        got[q][head0, :32], lam * ratio * src[q][head0] + sigma * init[q][head0, :32]
    )
    assert torch.equal(got["norm_f.weight"][32:], sigma * torch.ones(64))  # σ·1 on new gains
    assert torch.equal(got["wte.weight"][:, 32:], sigma * init["wte.weight"][:, 32:])


def test_perturbation_noise_has_the_mup_init_scale():
    src_cfg = replace(SRC, zero_query=False, init_std=0.8, output_std=2.0)
    tgt_cfg = src_cfg.at_width(256)
    sigma = 0.5
    got = shrink_pad_perturb(
        GPT(src_cfg).state_dict(), src_cfg, tgt_cfg, shrink=0.4, perturb=sigma, seed=0
    )
    d, D, r = 32, 256, 4
    new = {
        "blocks.0.mlp.fc.weight": (got["blocks.0.mlp.fc.weight"][r * d :], D),
        "blocks.0.mlp.proj.weight": (got["blocks.0.mlp.proj.weight"][d:], r * D),
        "blocks.1.attn.k.weight": (got["blocks.1.attn.k.weight"][d:], D),
        "blocks.1.attn.proj.weight": (got["blocks.1.attn.proj.weight"][d:], D),
    }
    for name, (noise, fan_in) in new.items():
        expected = sigma * 0.8 / math.sqrt(fan_in)
        assert abs(noise.std().item() / expected - 1) < 0.05, name
    readout = got["readout.weight"][:, d:]  # µP: σ_out / sqrt(d_base), constant in width
    assert abs(readout.std().item() / (sigma * 2.0 / math.sqrt(d)) - 1) < 0.05
    wte = got["wte.weight"][:, d:]  # σ_in = 1
    assert abs(wte.std().item() / sigma - 1) < 0.05


def test_zero_query_target_adds_no_query_noise():
    src_cfg = SRC  # zero_query=True: the target's fresh q is 0, so new q rows stay 0
    tgt_cfg = src_cfg.at_width(64)
    src = trained(src_cfg).state_dict()
    got = shrink_pad_perturb(src, src_cfg, tgt_cfg, shrink=1.0, perturb=1.0, seed=0)
    assert torch.count_nonzero(got["blocks.0.attn.q.weight"][32:]) == 0
    assert torch.count_nonzero(got["blocks.0.attn.k.weight"][32:]) > 0


def test_deterministic_and_leaves_the_global_rng_alone():
    src_cfg = replace(SRC, head_scaling="size")
    tgt_cfg = src_cfg.at_width(64)
    src = GPT(src_cfg).state_dict()
    before = {k: v.clone() for k, v in src.items()}
    torch.manual_seed(123)
    a = shrink_pad_perturb(src, src_cfg, tgt_cfg, shrink=0.4, perturb=0.1, seed=5)
    b = shrink_pad_perturb(src, src_cfg, tgt_cfg, shrink=0.4, perturb=0.1, seed=5)
    grow_state(src, src_cfg, tgt_cfg)
    after = torch.rand(4)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(4))  # no draw from the global generator
    c = shrink_pad_perturb(src, src_cfg, tgt_cfg, shrink=0.4, perturb=0.1, seed=6)
    for name in a:
        assert torch.equal(a[name], b[name])
        assert torch.equal(src[name], before[name])  # the source is not modified
    assert not torch.equal(a["blocks.0.mlp.fc.weight"], c["blocks.0.mlp.fc.weight"])


def _bad_state(kind: str, cfg: GPTConfig) -> dict:
    state = GPT(cfg).state_dict()
    if kind == "missing":
        del state["blocks.1.mlp.fc.weight"]
    elif kind == "extra":
        state["blocks.2.mlp.fc.weight"] = state["blocks.1.mlp.fc.weight"]
    elif kind == "shape":
        state["blocks.1.mlp.fc.weight"] = state["blocks.1.mlp.fc.weight"][:-1]
    return state


BAD = [
    # (source overrides, target = f(source), warmstart kwargs, state defect, field)
    ({"d_model": 64, "base_d_model": 32}, lambda c: c.at_width(32), {}, None, "model.d_model"),
    ({}, lambda c: replace(c.at_width(64), mlp_ratio=1.0), {}, None, "model.mlp_ratio"),
    (
        {"head_scaling": "size"},
        lambda c: replace(c, d_model=64, base_d_model=16),  # 2 heads < 4
        {},
        None,
        "model.base_d_model",
    ),
    ({}, lambda c: replace(c.at_width(64), n_layer=3), {}, None, "model.n_layer"),
    ({}, lambda c: replace(c.at_width(64), vocab_size=65), {}, None, "model.vocab_size"),
    ({}, lambda c: replace(c.at_width(64), seq_len=32), {}, None, "model.seq_len"),
    ({}, lambda c: replace(c.at_width(64), head_scaling="size"), {}, None, "model.head_scaling"),
    ({}, lambda c: replace(c.at_width(64), d_head=16), {}, None, "model.d_head"),
    ({}, lambda c: replace(c.at_width(64), tie_embeddings=True), {}, None, "model.tie_embeddings"),
    ({}, lambda c: replace(c.at_width(64), alpha_out=0.0), {}, None, "model.alpha_out"),
    ({}, lambda c: c.at_width(64), {}, "missing", "source state"),
    ({}, lambda c: c.at_width(64), {}, "extra", "source state"),
    ({}, lambda c: c.at_width(64), {}, "shape", "source state"),
]


@pytest.mark.parametrize("grow", ["grow_state", "shrink_pad_perturb"])
@pytest.mark.parametrize("overrides,target,_kw,defect,field", BAD)
def test_bad_growth_names_the_field(overrides, target, _kw, defect, field, grow):
    src_cfg = replace(SRC, **overrides)
    state = _bad_state(defect, src_cfg)
    tgt_cfg = target(src_cfg)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        if grow == "grow_state":
            grow_state(state, src_cfg, tgt_cfg)
        else:
            shrink_pad_perturb(state, src_cfg, tgt_cfg, shrink=0.4, perturb=0.1, seed=0)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"shrink": 1.5, "perturb": 0.1}, "warmstart.shrink"),
        ({"shrink": -0.1, "perturb": 0.1}, "warmstart.shrink"),
        ({"shrink": math.nan, "perturb": 0.1}, "warmstart.shrink"),
        ({"shrink": 0.4, "perturb": -0.1}, "warmstart.perturb"),
        ({"shrink": 0.4, "perturb": math.inf}, "warmstart.perturb"),
        ({"shrink": 0.4, "perturb": math.nan}, "warmstart.perturb"),
    ],
)
def test_bad_warmstart_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        shrink_pad_perturb(GPT(SRC).state_dict(), SRC, SRC.at_width(64), seed=0, **kwargs)


def test_equal_width_with_no_perturbation_is_the_identity():
    src = trained(SRC).state_dict()
    grown = shrink_pad_perturb(src, SRC, SRC, shrink=1.0, perturb=0.0, seed=0)
    padded = grow_state(src, SRC, SRC)
    for name, t in src.items():
        assert torch.equal(grown[name], t) and torch.equal(padded[name], t)
        assert padded[name].data_ptr() != t.data_ptr()  # new tensors, never views of the source
