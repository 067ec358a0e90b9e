"""The warm start's source, schedule and progressive growth: the source is the transfer check's
own run (the same weights, so it costs nothing more), the warm run's warmup rises from where its
source ended, and growth through several widths lands exactly on the target's shapes."""

import math
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest
import torch

from sweep.config import compose_config, resolve_vocabulary, run_config, target_depth
from sweep.core.checkpoint import load_checkpoint
from sweep.core.model import GPT, GPTConfig
from sweep.core.train import OptimConfig, lr_factor
from sweep.grow.warmstart import source_config, warm_optim, warm_start
from sweep.stages.source import source_checkpoint, source_run
from sweep.stages.target import source_is_transfer_point, train_source, warm_init
from sweep.stages.transfer import Run, TransferStage

train_run = TransferStage().train_point

LR = 0.0123  # 2**log2(0.0123) != 0.0123: the transfer's point must take the tuned LR itself


def tiny(tmp_path: Path, *overrides: str):
    """gpt_tiny, its transfer runs 12 steps, resolved as the driver resolves it; `tuned` its HPs
    with the LR at `LR`."""
    cfg = compose_config(
        f"out_root={tmp_path}",
        "+ladder=gpt_tiny",
        "logger=none",
        "ladder.transfer_steps=12",
        "ladder.eval_every=6",
        *overrides,
    )
    resolve_vocabulary(cfg)
    return cfg


def tuned(cfg) -> dict[str, float]:
    return dict(cfg.ladder.hparams) | {"lr": LR}


def test_the_tuned_lr_is_not_its_own_log2_round_trip():
    assert 2.0 ** math.log2(LR) != LR  # why the transfer multiplies instead


def test_the_reused_source_is_bit_identical_to_the_transfer_point_it_comes_from(
    tmp_path, one_thread
):
    cfg = tiny(tmp_path)
    hp = tuned(cfg)
    run_dir = tmp_path / "gpt_tiny"
    point = Run("mup", cfg.ladder.widths[-1], 0, cfg.seed)
    record = train_run(cfg, run_dir, hp, point)
    assert source_is_transfer_point(cfg, hp, cfg.seed)
    saved = source_checkpoint(run_dir, source_run(cfg, hp, cfg.seed))
    assert saved.exists()  # the transfer run kept its final state for the target stage
    reference = {k: v.clone() for k, v in load_checkpoint(saved)["model"].items()}

    _, result, state = train_source(cfg, run_dir, hp, cfg.seed)
    assert result.resumed_from == result.steps_done == cfg.ladder.transfer_steps  # not retrained
    assert result.final_val_loss == record["loss"]
    assert state.keys() == reference.keys()
    assert all(torch.equal(state[k], reference[k]) for k in state)

    # trained on its own, with no transfer check before it, the source is the same bits
    _, alone, fresh = train_source(cfg, tmp_path / "alone", hp, cfg.seed)
    assert alone.resumed_from == 0 and alone.final_val_loss == record["loss"]
    assert all(torch.equal(fresh[k], reference[k]) for k in state)


@pytest.mark.parametrize(
    "overrides, why",
    [
        (["ladder.target_n_layer=4"], "the target is deeper than the ladder: so is its source"),
        (["warmstart=stack"], "stack's source is shallower than the ladder"),
    ],
)
def test_a_source_the_transfer_does_not_train_is_not_taken_for_one(tmp_path, overrides, why):
    cfg = tiny(tmp_path, *overrides)
    hp = tuned(cfg)
    run_dir = tmp_path / "gpt_tiny"
    assert not source_is_transfer_point(cfg, hp, cfg.seed), why
    train_run(cfg, run_dir, hp, Run("mup", cfg.ladder.widths[-1], 0, cfg.seed))
    assert not list((run_dir / "target").glob("source_*.ckpt")), why
    assert not source_is_transfer_point(tiny(tmp_path), hp, cfg.seed + 1)  # another seed


def test_the_warm_runs_warmup_rises_from_the_lr_its_source_ended_at():
    source = OptimConfig(lr=0.01, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    # the source's last step (99 of 100): cosine at progress 89/90 between 0.1 and 1
    ended = 0.01 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 89 / 90)))
    warm = warm_optim(source, source, 100, warmup=5, peak=0.5)
    assert warm.lr == pytest.approx(0.005) and warm.warmup_steps == 5
    assert warm.warmup_from == pytest.approx(ended / 0.005)
    lrs = [warm.lr * lr_factor(t, warm, 300) for t in range(5)]
    assert lrs[0] == pytest.approx(ended + (0.005 - ended) / 5)  # one fifth of the way up
    assert lrs[-1] == pytest.approx(0.005)
    assert all(b > a for a, b in pairwise(lrs))

    none = warm_optim(source, source, 100, warmup=0, peak=1.0)
    assert none.warmup_steps == 0 and lr_factor(0, none, 300) == 1.0  # straight at the peak
    ladder = warm_optim(source, source, 100, warmup=None, peak=1.0)
    assert ladder.warmup_steps == 10  # null: the ladder's warmup
    low = warm_optim(source, source, 100, warmup=5, peak=ended / 0.01 / 2)
    assert low.warmup_from == 1.0  # a peak below where the source ended: no rise, held there


def test_warmup_from_zero_is_the_plain_linear_warmup():
    optim = OptimConfig(warmup_steps=4)
    assert [lr_factor(t, optim, 10) for t in range(4)] == [0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize("method", ["shrink_pad_perturb", "function_preserving", "rc_sampling"])
def test_progressive_growth_composes_to_the_targets_shapes_exactly(method):
    target = GPTConfig(vocab_size=64, seq_len=16, n_layer=2, d_model=128, d_head=8, base_d_model=32)
    options = {"shrink": 0.8, "perturb": 0.3, "sampling": "iid", "noise": 0.0, "stack_factor": 2}
    widths = [32, 64, 96, 128]  # 96: a stage need not be a power of two
    configs = [source_config(target, method, w, stack_factor=2) for w in widths[:-1]] + [target]
    torch.manual_seed(0)
    state = GPT(configs[0]).state_dict()
    for before, after in pairwise(configs):
        state = warm_start(method, state, before, after, options, seed=0)
        expected = GPT(after).state_dict()
        assert state.keys() == expected.keys()
        assert all(state[k].shape == expected[k].shape for k in state), after.d_model


def test_function_preserving_growth_keeps_the_function_through_every_stage():
    target = GPTConfig(vocab_size=64, seq_len=16, n_layer=2, d_model=128, d_head=8, base_d_model=32)
    idx = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(1))
    configs = [source_config(target, "function_preserving", w, 2) for w in (32, 64)] + [target]
    torch.manual_seed(0)
    source = GPT(configs[0]).double()
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = source.state_dict()
    for before, after in pairwise(configs):
        state = warm_start("function_preserving", state, before, after, {}, seed=0)
    grown = GPT(target).double()
    grown.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(grown(idx), source(idx), rtol=1e-9, atol=1e-9)


def test_progressive_stages_train_and_charge_only_what_the_pipeline_would_not_spend(
    tmp_path, one_thread
):
    cfg = tiny(tmp_path, "warmstart.source=proxy", "warmstart.stages=[64]",
               "warmstart.stage_steps=6", "ladder.widths=[32,64]", "ladder.target=128")  # fmt: skip
    hp = tuned(cfg)
    run_dir = tmp_path / "gpt_tiny"
    train_run(cfg, run_dir, hp, Run("mup", 32, 0, cfg.seed))  # the source, by the transfer
    target = run_config(cfg, 128, "mup", hp, 20, cfg.seed, target_depth(cfg))
    state, grown_from, info = warm_init(cfg, run_dir, hp, target)
    expected = GPT(target.model).state_dict()
    assert state.keys() == expected.keys()
    assert all(state[k].shape == expected[k].shape for k in state)
    assert grown_from.model.d_model == 64 and grown_from.steps == 6
    assert info["source_from_transfer"] and info["stages"] == [64]
    assert info["charged_flops"] == info["stage_flops"] > 0  # the source is the transfer's
    assert len(list((run_dir / "target").glob("stage_w64_*.ckpt"))) == 1
    again = warm_init(cfg, run_dir, hp, target)[0]  # resumed from the stage's checkpoint
    assert all(torch.equal(again[k], state[k]) for k in state)


def test_a_warm_run_is_the_cold_runs_config_but_for_its_schedule(tmp_path):
    cfg = tiny(tmp_path, "warmstart.warmup=2", "warmstart.peak=0.5")
    hp = tuned(cfg)
    target = run_config(cfg, 128, "mup", hp, 20, cfg.seed, target_depth(cfg))
    source = source_run(cfg, hp, cfg.seed)
    ws = cfg.warmstart
    warm = replace(target, optim=warm_optim(target.optim, source.optim, source.steps,
                                            warmup=ws.warmup, peak=ws.peak))  # fmt: skip
    assert replace(warm, optim=target.optim) == target
    assert warm.optim.lr == pytest.approx(LR / 2) and warm.optim.warmup_steps == 2
