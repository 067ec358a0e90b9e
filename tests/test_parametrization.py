"""The µP rules against the `mup` package, and µP = SP at width multiplier 1."""

from dataclasses import replace

import mup
import pytest
import torch

from sweep.core import parametrization as P
from sweep.core.model import GPT, GPTConfig, lm_loss
from sweep.core.train import OptimConfig, make_optimizer

BASE = GPTConfig(d_model=32, d_head=8, seq_len=16, n_layer=2, zero_query=False)
WIDTHS = [64, 128, 256]


class MupReferenceGPT(GPT):
    """The same GPT built the way `mup` wants it: the readout is a `mup.MuReadout`."""

    def __init__(self, cfg: GPTConfig):
        super().__init__(cfg)
        self.readout = mup.MuReadout(
            cfg.d_model, cfg.vocab_size, bias=False, output_mult=cfg.alpha_out
        )

    def forward(self, idx):
        pos = torch.arange(idx.size(1))
        x = self.input_mult * (self.wte(idx) + self.wpe(pos))
        for block in self.blocks:
            x = block(x)
        return self.readout(self.norm_f(x))


def mup_reference(cfg: GPTConfig, base: GPTConfig | None) -> MupReferenceGPT:
    """`mup.set_base_shapes` on the reference; base None gives mup's SP (every multiplier 1)."""
    model = MupReferenceGPT(cfg)
    base_model = None if base is None else MupReferenceGPT(base)
    return mup.set_base_shapes(model, base_model, rescale_params=False)


def lr_and_wd_by_name(optimizer, names_of) -> dict[str, tuple[float, float]]:
    out = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            out[names_of[id(p)]] = (group["lr"], group["weight_decay"])
    return out


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("parametrization", ["mup", "sp"])
def test_adam_lr_and_weight_decay_equal_mup_adamw(width, parametrization):
    cfg = replace(BASE, parametrization=parametrization).at_width(width)
    ref = mup_reference(cfg, BASE if parametrization == "mup" else None)
    ours = GPT(cfg)
    lr, wd = 3e-3, 0.1
    ref_opt = mup.MuAdamW(ref.parameters(), lr=lr, weight_decay=wd)
    our_opt = make_optimizer(ours, OptimConfig(lr=lr, weight_decay=wd))
    ref_by_name = lr_and_wd_by_name(ref_opt, {id(p): n for n, p in ref.named_parameters()})
    our_by_name = lr_and_wd_by_name(our_opt, {id(p): n for n, p in ours.named_parameters()})
    assert ref_by_name.keys() == our_by_name.keys()
    m = width / BASE.d_model if parametrization == "mup" else 1.0
    for name, p in ours.named_parameters():
        (ref_lr, ref_wd), (our_lr, our_wd) = ref_by_name[name], our_by_name[name]
        assert our_lr == pytest.approx(ref_lr, rel=1e-12), name
        if p.ndim == 2:  # decoupled decay actually applied per step is lr·wd
            assert our_lr * our_wd == pytest.approx(ref_lr * ref_wd, rel=1e-12), name
        else:
            assert our_wd == 0.0  # norm gains are not decayed
        if P.role_of(name, p) is P.Role.HIDDEN:
            assert our_lr == pytest.approx(lr / m)


@pytest.mark.parametrize("width", WIDTHS)
def test_mup_init_std_equals_mup_init(width):
    """`mup.init.normal_` turns a base-width std into the std at `width`; ours must agree.

    Both draw from the same seed, so equal tensors mean equal stds. The base stds are the
    plain fan-in convention at the base width, where µP and SP coincide.
    """
    cfg = BASE.at_width(width)
    ref = dict(mup_reference(cfg, BASE).named_parameters())
    base_params = dict(GPT(BASE).named_parameters())
    for name, p in GPT(cfg).named_parameters():
        role = P.role_of(name, p)
        if role is P.Role.VECTOR:
            assert torch.all(p == 1), name
            continue
        base_std = P.init_std(BASE, name, role, fan_in=base_params[name].shape[1])
        template = torch.empty(p.shape)
        template.infshape = ref[name].infshape
        torch.manual_seed(0)
        expected = mup.init.normal_(template, std=base_std)
        torch.manual_seed(0)
        ours = torch.empty(p.shape).normal_(0, P.init_std(cfg, name, role, fan_in=p.shape[1]))
        torch.testing.assert_close(ours, expected, rtol=1e-6, atol=0, msg=name)
        # and the model was really initialised with that std
        assert p.std().item() == pytest.approx(ours.std().item(), rel=0.15), name


@pytest.mark.parametrize("width", WIDTHS)
def test_sp_init_is_pytorch_fan_in_rule_and_ignores_the_base(width):
    """SP: the model's matrices really have std σ/sqrt(fan_in) (σ_out for the readout), and the
    µP base plays no part: the same seed gives the same model and the same AdamW groups."""
    sp = replace(BASE, parametrization="sp", init_std=0.5, output_std=2.0)
    cfg = sp.at_width(width)  # base_d_model = 32
    torch.manual_seed(0)
    model = GPT(cfg)
    for name, p in model.named_parameters():
        role = P.role_of(name, p)
        if role in (P.Role.HIDDEN, P.Role.OUTPUT):
            sigma = cfg.init_std if role is P.Role.HIDDEN else cfg.output_std
            assert p.std().item() == pytest.approx(sigma / p.shape[1] ** 0.5, rel=0.1), name
    torch.manual_seed(0)
    own_base = GPT(replace(cfg, base_d_model=None))  # its own width as the base
    for (name, a), b in zip(
        model.state_dict().items(), own_base.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    groups = [make_optimizer(m, OptimConfig(lr=1e-2, weight_decay=0.1)) for m in (model, own_base)]
    settings = [[(g["lr"], g["weight_decay"], g["eps"]) for g in o.param_groups] for o in groups]
    assert settings[0] == settings[1]


@pytest.mark.parametrize("width", WIDTHS)
def test_readout_multiplier_matches_mu_readout(width):
    """Our α_out/m readout computes what `mup.MuReadout` computes on the same weights."""
    cfg = replace(BASE, alpha_out=1.7).at_width(width)
    ours = GPT(cfg)
    ref = mup_reference(cfg, BASE)
    ref.load_state_dict(ours.state_dict())
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len))
    torch.testing.assert_close(ours(idx), ref(idx))


def test_attention_scale_is_one_over_head_size_in_mup():
    base = replace(BASE, head_scaling="size", alpha_attn=2.0)
    wide = base.at_width(4 * BASE.d_model)  # head size grows 4x
    assert wide.head_size == 4 * base.head_size
    assert P.attention_scale(wide) / P.attention_scale(base) == pytest.approx(1 / 4)
    sp, sp_wide = replace(base, parametrization="sp"), replace(wide, parametrization="sp")
    assert P.attention_scale(sp_wide) / P.attention_scale(sp) == pytest.approx(1 / 2)
    assert P.attention_scale(base) == pytest.approx(P.attention_scale(sp))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"tie_embeddings": True},
        {"head_scaling": "size"},
        {"zero_query": True, "zero_readout": True},
        {"alpha_in": 0.5, "alpha_out": 3.0, "alpha_attn": 2.0},
    ],
)
def test_mup_equals_sp_at_base_width(overrides):
    """mup's "backward compatible" property: at m = 1 both parametrizations are one model."""
    cfg = replace(BASE, **overrides)
    models, losses = {}, {}
    for parametrization in ("mup", "sp"):
        torch.manual_seed(0)
        model = GPT(replace(cfg, parametrization=parametrization))
        optimizer = make_optimizer(model, OptimConfig(lr=1e-2, weight_decay=0.1))
        torch.manual_seed(1)
        idx = torch.randint(0, cfg.vocab_size, (4, cfg.seq_len + 1))
        trace = []
        for _ in range(3):
            loss = lm_loss(model, idx[:, :-1], idx[:, 1:])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            trace.append(loss.item())
        models[parametrization], losses[parametrization] = model, trace
    assert losses["mup"] == losses["sp"]
    for (name, a), (_, b) in zip(
        models["mup"].named_parameters(), models["sp"].named_parameters(), strict=True
    ):
        assert torch.equal(a, b), name


def test_mup_logits_at_init_are_sps_over_sqrt_m():
    """Above the base the rules do change the model: with one seed every weight is SP's but the
    readout, drawn 2x larger (σ_out/sqrt(d_base) vs σ_out/sqrt(d), d = 4 d_base) and multiplied
    by 1/m = 1/4, so µP's logits are exactly SP's over sqrt(m) = 2 (µP keeps them O(1/sqrt(m))
    at init, SP keeps them O(1))."""
    cfg = BASE.at_width(128)
    torch.manual_seed(0)
    mup_model = GPT(cfg)
    torch.manual_seed(0)
    sp_model = GPT(replace(cfg, parametrization="sp"))
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len))
    with torch.no_grad():
        torch.testing.assert_close(mup_model(idx), sp_model(idx) / 2, rtol=1e-5, atol=1e-6)
        assert sp_model(idx).std() > 0.5


def test_every_parameter_has_the_expected_role():
    expected = {
        "wte.weight": P.Role.INPUT,
        "wpe.weight": P.Role.INPUT,
        "readout.weight": P.Role.OUTPUT,
        "norm_f.weight": P.Role.VECTOR,
        "blocks.0.norm_attn.weight": P.Role.VECTOR,
        "blocks.0.attn.q.weight": P.Role.HIDDEN,
        "blocks.0.attn.proj.weight": P.Role.HIDDEN,
        "blocks.0.mlp.fc.weight": P.Role.HIDDEN,
        "blocks.0.mlp.proj.weight": P.Role.HIDDEN,
    }
    params = dict(GPT(BASE).named_parameters())
    for name, role in expected.items():
        assert P.role_of(name, params[name]) is role, name
    tied = dict(GPT(replace(BASE, tie_embeddings=True)).named_parameters())
    assert (
        "readout.weight" not in tied and P.role_of("wte.weight", tied["wte.weight"]) is P.Role.INPUT
    )


def test_scaled_eps_option_divides_hidden_eps_by_m():
    model = GPT(BASE.at_width(128))
    groups = make_optimizer(model, OptimConfig(eps=1e-8, scale_eps=True)).param_groups
    eps = {g["role"]: g["eps"] for g in groups}
    assert eps["hidden"] == pytest.approx(1e-8 / 4) and eps["input"] == 1e-8


def test_attention_scale_uses_the_key_size_not_the_value_size():
    cfg = replace(BASE, key_size=16, value_size=4, alpha_attn=2.0)
    assert P.attention_scale(cfg) == pytest.approx(2.0 * 8**0.5 / 16)
    assert P.attention_scale(replace(cfg, parametrization="sp")) == pytest.approx(2.0 / 4)
    assert GPT(cfg).blocks[0].attn.scale == P.attention_scale(cfg)
