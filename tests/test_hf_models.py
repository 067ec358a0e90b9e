"""Hugging Face models as researchers bring them: `GPT2LMHeadModel` (tied and untied, `Conv1D`
weights stored (in, out)) and `LlamaForCausalLM` (grouped-query attention, eager and SDPA),
built by the shipped examples from `transformers` configs at tiny widths.

What must hold: the README's install imports `transformers` and a working `torchvision`; every
`Conv1D` weight is drawn at σ/sqrt(its fan-in); the per-parameter LRs are `mup.MuAdamW`'s; the
pre-flight coordinate check passes the correct models and refuses an unnamed tied head with the
fix `mup.MuSharedReadout`; GPT-2 runs the whole pipeline.
"""

from __future__ import annotations

import math
from dataclasses import replace

import mup
import pytest
import torch
import torchvision
import transformers
from custom_configs import FAST, HF_GPT2, HF_LLAMA, check_cfg
from transformers.pytorch_utils import Conv1D

from sweep.config import compose_config, model_config, validate
from sweep.core import custom as C
from sweep.core.custom import CustomConfig, load_factory
from sweep.core.models import build_model, param_groups
from sweep.core.parametrization import Role
from sweep.pipeline import Pipeline
from sweep.stages.model_check import REFUSE_SLOPE, check_model


def test_the_install_imports_transformers_beside_a_torchvision_built_for_its_torch():
    """A torchvision built for another torch imports its package and then fails to register its
    compiled operators ('operator torchvision::nms does not exist'): run one of them."""
    assert transformers.GPT2LMHeadModel and transformers.LlamaForCausalLM  # the lazy imports
    boxes = torch.tensor([[0.0, 0, 1, 1], [0, 0, 1.1, 1.1], [2, 2, 3, 3]])
    kept = torchvision.ops.nms(boxes, torch.tensor([1.0, 0.9, 0.8]), iou_threshold=0.5)
    assert kept.tolist() == [0, 2]
    assert torch.__version__.partition("+")[2] == torchvision.__version__.partition("+")[2]


def gpt2(width: int, **options) -> CustomConfig:
    return CustomConfig(
        factory=HF_GPT2, d_model=width, base_d_model=32, seq_len=16, readout="lm_head",
        options=tuple(options.items()),
    )  # fmt: skip


@pytest.mark.parametrize("init_std", [1.0, 0.5])
def test_every_conv1d_weight_of_gpt2_is_drawn_at_sigma_over_sqrt_its_fan_in(init_std):
    cfg = replace(gpt2(256), init_std=init_std)
    torch.manual_seed(0)
    model = C.build_custom(cfg)
    convs = {name: m for name, m in model.named_modules() if isinstance(m, Conv1D)}
    assert len(convs) == 4 * cfg.n_layer  # c_attn, attn.c_proj, c_fc, mlp.c_proj per block
    roles = C.roles(model, cfg)
    for name, conv in convs.items():
        fan_in = conv.weight.shape[0]  # Conv1D computes x @ weight: (in, out)
        assert conv.weight.std().item() == pytest.approx(init_std / math.sqrt(fan_in), rel=0.03)
        assert roles[f"{name}.weight"][0] is Role.HIDDEN
    assert fan_in == 4 * 256  # the last is mlp.c_proj, whose fan-in is the MLP's


@pytest.mark.parametrize(
    ("factory", "options"),
    [(HF_GPT2, {"tied": False}), (HF_GPT2, {}), (HF_LLAMA, {"kv_group": 2})],
    ids=["gpt2-untied", "gpt2-tied", "llama-gqa"],
)
def test_hf_lrs_and_decays_are_mup_muadamw_s(factory, options):
    build = load_factory(factory)
    base, delta = build(32, 2, 256, 16, **options), build(64, 2, 256, 16, **options)
    reference = build(128, 2, 256, 16, **options)
    mup.set_base_shapes(reference, base, delta=delta, do_assert=False)  # a plain-Linear head
    theirs = mup.MuAdamW(reference.parameters(), lr=3e-3, weight_decay=0.1)
    name_of = {id(p): n for n, p in reference.named_parameters()}
    expected = {name_of[id(p)]: g["lr"] for g in theirs.param_groups for p in g["params"]}

    cfg = CustomConfig(
        factory=factory, d_model=128, base_d_model=32, seq_len=16, readout="lm_head",
        options=tuple(options.items()),
    )  # fmt: skip
    model = build_model(cfg)
    ours = {n: g["lr"] for g in param_groups(model, 3e-3, 0.1, 1e-8) for n in g["names"]}
    assert ours.keys() == expected.keys()
    for name, lr in expected.items():
        assert ours[name] == pytest.approx(lr, rel=1e-12), name
    assert sum(lr != 3e-3 for lr in ours.values()) >= 4 * 2  # the hidden matrices got 1/m


@pytest.mark.parametrize(
    "overrides",
    [
        [f"model.factory={HF_GPT2}", "model.readout=lm_head"],
        [f"model.factory={HF_GPT2}", "model.readout=lm_head", "+model.options.tied=false"],
        [f"model.factory={HF_LLAMA}", "model.readout=lm_head"],
        [f"model.factory={HF_LLAMA}", "model.readout=lm_head", "+model.options.attention=sdpa"],
    ],
    ids=["gpt2-tied", "gpt2-untied", "llama-eager", "llama-sdpa"],
)
def test_hf_models_pass_the_model_check_with_their_residual_stream_measured(tmp_path, overrides):
    cfg = check_cfg(tmp_path, *overrides, "+model.options.head_dim=8")
    validate(cfg)
    record = check_model(cfg, tmp_path)
    assert record["offenders"] == [] and record["worst"]["worst_slope"] <= REFUSE_SLOPE
    blocks = "transformer.h" if "gpt2" in overrides[0] else "model.layers"
    model = C.build_custom(model_config(cfg, 32, "mup", dict(cfg.ladder.hparams)))
    assert sorted(C.residual_stream_names(model)) == [f"{blocks}.0", f"{blocks}.1"]


def test_an_unnamed_tied_gpt2_head_is_refused_with_mushared_readout(tmp_path):
    cfg = check_cfg(tmp_path, f"model.factory={HF_GPT2}", "+model.options.head_dim=8")
    validate(cfg)
    with pytest.raises(ValueError) as refused:
        check_model(cfg, tmp_path)
    message = str(refused.value)
    assert "model.readout=lm_head" in message and "mup.MuSharedReadout" in message
    assert "MuReadout " not in message.replace("MuSharedReadout", "")  # it would untie the head


def test_gpt2_runs_the_whole_pipeline(tmp_path, corpus):
    cfg = compose_config(
        f"out_root={tmp_path}", "+ladder=gpt_tiny", "model=custom", "run_name=gpt2",
        f"model.factory={HF_GPT2}", "model.readout=lm_head", "+model.options.head_dim=8", *FAST,
    )  # fmt: skip
    summary = Pipeline(cfg).run()
    assert summary["model"]["check"]["worst_slope"] <= REFUSE_SLOPE
    assert summary["transfer"]["verdict"] and math.isfinite(summary["verify"]["regret"])
    warm, cold = summary["target"]["warm"], summary["target"]["cold"]
    assert warm["val_curve"][0][1] < cold["val_curve"][0][1]  # the tied source carried over
    assert (tmp_path / "gpt2" / "report" / "report.html").exists()
