"""`warmstart.method`: each method gives a trainable µP target; exact ones keep the function."""

import inspect
from dataclasses import replace
from itertools import pairwise

import pytest
import torch

from sweep.core import parametrization as P
from sweep.core.model import GPT, GPTConfig, lm_loss
from sweep.core.train import OptimConfig, make_optimizer
from sweep.grow.choices import Method
from sweep.grow.warmstart import GROWERS, method_settings, source_config, warm_start

TARGET = GPTConfig(
    vocab_size=64, seq_len=16, n_layer=2, d_model=128, d_head=8, base_d_model=32, alpha_out=1.5
)
IDX = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(1))
GROWN = [m for m in Method if m != Method.cold]
OPTIONS = {"shrink": 0.8, "perturb": 0.3, "sampling": "stratified", "noise": 0.0, "stack_factor": 2}


def trained_source(cfg: GPTConfig) -> GPT:
    """A source moved off its init (non-zero queries, random gains), in float64."""
    torch.manual_seed(0)
    model = GPT(cfg).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p)) if p.ndim == 2 else p.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("method", GROWN)
def test_every_method_gives_a_target_state_that_trains_with_the_targets_mup_rules(method):
    src_cfg = source_config(TARGET, method, width=64, stack_factor=2)
    state = warm_start(
        method, trained_source(src_cfg).state_dict(), src_cfg, TARGET, OPTIONS, seed=0
    )
    model = GPT(TARGET).double()
    model.load_state_dict(state, strict=True)  # every tensor, the target's shapes
    optimizer = make_optimizer(model, OptimConfig(lr=1e-2))
    losses = []
    for _ in range(5):
        loss = lm_loss(model, IDX, IDX.roll(1, 1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(b < a for a, b in pairwise(losses)), losses  # every step helps ...
    assert losses[-1] < losses[0] / 2, losses  # ... and 5 steps halve the loss on this batch


@pytest.mark.parametrize("method", ["function_preserving", "rc_sampling"])
def test_exact_methods_start_from_the_sources_function(method):
    src_cfg = source_config(TARGET, method, width=32, stack_factor=2)
    source = trained_source(src_cfg)
    grown = GPT(TARGET).double()
    grown.load_state_dict(warm_start(method, source.state_dict(), src_cfg, TARGET, OPTIONS, seed=0))
    with torch.no_grad():
        assert (source(IDX) - grown(IDX)).abs().max().item() <= 1e-10


def test_inexact_methods_change_the_function_and_the_exact_ones_do_not_at_zero_noise():
    """The contrast the benchmark measures: λ<1, σ>0 and noise move the start off the source."""
    src_cfg = source_config(TARGET, "shrink_pad_perturb", width=32, stack_factor=2)
    source = trained_source(src_cfg)
    with torch.no_grad():
        expected = source(IDX)
    for method, options in [
        ("shrink_pad_perturb", OPTIONS),
        ("rc_sampling", OPTIONS | {"noise": 0.1}),
        ("rc_sampling", OPTIONS | {"sampling": "iid"}),
    ]:
        grown = GPT(TARGET).double()
        grown.load_state_dict(
            warm_start(method, source.state_dict(), src_cfg, TARGET, options, seed=0)
        )
        with torch.no_grad():
            assert (expected - grown(IDX)).abs().max().item() > 1e-3, (method, options)


def test_stack_source_is_shallower_and_its_blocks_repeat():
    src_cfg = source_config(TARGET, "stack", width=TARGET.d_model, stack_factor=2)
    assert src_cfg.n_layer == 1 and src_cfg.d_model == TARGET.d_model
    state = trained_source(src_cfg).state_dict()
    grown = warm_start("stack", state, src_cfg, TARGET, OPTIONS, seed=0)
    for suffix in ("attn.q.weight", "mlp.fc.weight", "norm_attn.weight"):
        assert torch.equal(grown[f"blocks.0.{suffix}"], grown[f"blocks.1.{suffix}"])
        assert torch.equal(grown[f"blocks.0.{suffix}"], state[f"blocks.0.{suffix}"])


def test_bad_stack_factor_and_cold_are_refused():
    with pytest.raises(ValueError, match="stack_factor"):
        source_config(replace(TARGET, n_layer=3), "stack", width=64, stack_factor=2)
    src_cfg = source_config(TARGET, "cold", width=64, stack_factor=2)
    with pytest.raises(ValueError, match=r"warmstart\.method"):
        warm_start("cold", GPT(src_cfg).state_dict(), src_cfg, TARGET, OPTIONS, seed=0)


@pytest.mark.parametrize("n_layer, base, factor, source_base", [(2, None, 2, 2), (8, 2, 4, None)])
def test_a_stack_source_keeps_completep_s_base_at_the_tuned_depth(
    n_layer, base, factor, source_base
):
    """The source is `factor` times shallower than the target but trains with the HPs tuned at
    the target's base depth: CompleteP scales its branches by (L_b / L_source)^α."""
    target = replace(TARGET, n_layer=n_layer, base_n_layer=base)
    source = source_config(target, Method.stack, width=64, stack_factor=factor)
    assert source.n_layer == n_layer // factor
    assert source.depth_base == target.depth_base
    assert P.residual_multiplier(source) == (target.depth_base / source.n_layer) ** 1.0
    settings = OPTIONS | {"stack_factor": factor}
    state = warm_start(
        Method.stack, trained_source(source).state_dict(), source, target, settings, 0
    )
    GPT(target).double().load_state_dict(state, strict=True)


def test_each_method_records_exactly_the_settings_its_function_takes():
    for method, grower in GROWERS.items():
        params = inspect.signature(grower.grow).parameters
        takes = {name for name, p in params.items() if p.kind is p.KEYWORD_ONLY} - {"seed"}
        assert takes == set(grower.settings), method
    assert method_settings("cold", OPTIONS) == {}
    assert method_settings("rc_sampling", OPTIONS) == {"sampling": "stratified", "noise": 0.0}


def test_stack_refuses_a_depth_its_factor_does_not_give():
    source = replace(TARGET, d_model=32, n_layer=1)
    with pytest.raises(ValueError, match="stack grows 1 blocks into 2"):
        warm_start(
            "stack", GPT(source).state_dict(), source, replace(TARGET, n_layer=3), OPTIONS, 0
        )
