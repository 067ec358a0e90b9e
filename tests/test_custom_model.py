"""A user's model through the pipeline: µP from the shapes mup infers, checked before any job.

The Llama-style example (mup's MuReadout, 1/d attention) gets exactly `mup.MuAdamW`'s LRs; the
nanoGPT-style one is made µP by naming its readout; a plain readout or an init that ignores
fan-in is refused by the coordinate check with the module and the fix; every bad factory is one
line before any job; the inferred padding grows a Llama exactly; both examples run the whole
pipeline.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import replace

import mup
import pytest
import torch
import yaml
from custom_configs import EXAMPLES, FAST, LLAMA, NANOGPT, TUTORIAL, check_cfg

from sweep.config import compose_config, model_config, resolve_vocabulary, validate
from sweep.core import custom as C
from sweep.core.custom import CustomConfig, check_custom, roles
from sweep.core.models import build_model, param_groups
from sweep.core.parametrization import Role
from sweep.core.sections import Summary, mismatches
from sweep.core.train import OptimConfig, RunConfig, train
from sweep.grow.pad_inferred import grow_inferred, pad_blocks
from sweep.grow.shrink_pad_perturb import shrink_pad_perturb
from sweep.grow.warmstart import pad_function_gap
from sweep.pipeline import Pipeline, StageError
from sweep.stages.handoff import run_from_record
from sweep.stages.model_check import REFUSE_SLOPE, check_model, layout_warning


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def logits_of_fresh(cfg: CustomConfig) -> torch.Tensor:
    """The logits of the model of `cfg` drawn under seed 0, on fixed token ids."""
    idx = torch.arange(16).reshape(2, 8)
    torch.manual_seed(0)
    return build_model(cfg)(idx)


def llama(width: int, **kw) -> CustomConfig:
    return CustomConfig(factory=LLAMA, d_model=width, base_d_model=32, seq_len=32, **kw)


@pytest.mark.parametrize("options", [{}, {"kv_group": 2}])
def test_llama_lrs_and_decays_are_mup_muadamw_s(options):
    example = load_example("llama")
    base, delta = example.build(32, 2, 256, 32, **options), example.build(64, 2, 256, 32, **options)
    reference = example.build(128, 2, 256, 32, **options)
    mup.set_base_shapes(reference, base, delta=delta)
    theirs = mup.MuAdamW(reference.parameters(), lr=3e-3, weight_decay=0.1)
    name_of = {id(p): n for n, p in reference.named_parameters()}
    expected = {
        name_of[id(p)]: (g["lr"], g["weight_decay"])
        for g in theirs.param_groups
        for p in g["params"]
    }

    cfg = llama(128, options=tuple(options.items()))
    ours = {
        n: (g["lr"], g["weight_decay"])
        for g in param_groups(build_model(cfg), 3e-3, 0.1, 1e-8)
        for n in g["names"]
    }
    assert ours.keys() == expected.keys()
    by_role = roles(build_model(cfg), cfg)
    for name, (lr, wd) in expected.items():
        assert ours[name][0] == pytest.approx(lr, rel=1e-12), name
        if by_role[name][0] is not Role.VECTOR:  # vectors take no decay here (as the GPT's gains)
            assert ours[name][1] == pytest.approx(wd, rel=1e-12), name
    assert by_role["head.weight"] == (Role.OUTPUT, 4.0)
    assert by_role["blocks.0.attn.q.weight"] == (Role.HIDDEN, 4.0)
    assert by_role["embed.weight"] == (Role.INPUT, 1.0)


def test_sp_is_the_same_factory_without_mup_rules():
    sp = llama(128, parametrization="sp")
    groups = param_groups(build_model(sp), 3e-3, 0.0, 1e-8)
    assert {g["lr"] for g in groups} == {3e-3}
    torch.manual_seed(0)
    mup_model, sp_model = build_model(llama(128)), build_model(sp)
    assert mup_model.head.width_mult() == 4.0 and sp_model.head.width_mult() == 1.0
    # µP's readout is drawn at the base fan-in; SP's at its own
    assert mup_model.head.weight.std().item() == pytest.approx(1 / math.sqrt(32), rel=0.05)
    assert sp_model.head.weight.std().item() == pytest.approx(1 / math.sqrt(128), rel=0.05)


def test_the_tool_applies_alpha_out_to_a_named_plain_readout():
    cfg = CustomConfig(factory=NANOGPT, d_model=64, base_d_model=32, seq_len=32, readout="lm_head")
    one = logits_of_fresh(cfg)
    torch.testing.assert_close(logits_of_fresh(replace(cfg, alpha_out=3.0)), 3 * one)
    unnamed = logits_of_fresh(replace(cfg, readout=None))
    torch.testing.assert_close(unnamed, 2 * one)  # µP's 1/m at twice the base width


def test_the_readout_needs_no_infshape_once_built():
    torch.manual_seed(0)
    model = build_model(llama(64))
    idx = torch.randint(0, 256, (2, 16))
    before = model(idx)
    for p in model.parameters():  # what compile's fake tensors and FSDP's DTensors lose
        del p.infshape
    torch.testing.assert_close(model(idx), before)


@pytest.mark.slow
@pytest.mark.parametrize(
    "model",
    [
        llama(64),
        CustomConfig(
            factory=NANOGPT,
            d_model=64,
            base_d_model=32,
            seq_len=32,
            readout="lm_head",
            alpha_in=2.0,
        ),
    ],
    ids=["llama", "nanogpt"],
)
def test_a_compiled_custom_model_trains_like_the_eager_one(corpus, model):
    """MuReadout's frozen width multiplier and the tool's hooks compile (microsoft/mup#60)."""
    from sweep.core.hardware import Execution

    run = RunConfig(
        model=model, optim=OptimConfig(lr=3e-3), steps=6, batch_size=4, eval_every=3, eval_batches=2
    )
    eager, _ = train(run, corpus)
    compiled, _ = train(run, corpus, execution=Execution(compile=True))
    assert compiled.train_loss[-1][1] < compiled.train_loss[0][1]
    for (_, a), (_, b) in zip(eager.train_loss, compiled.train_loss, strict=True):
        assert a == pytest.approx(b, rel=1e-3)


def test_a_custom_model_trains_and_resumes_deterministically(corpus, tmp_path):
    run = RunConfig(
        model=llama(64),
        optim=OptimConfig(lr=3e-3, warmup_steps=2),
        steps=8,
        batch_size=4,
        eval_every=4,
        eval_batches=2,
    )
    whole, _ = train(run, corpus)
    assert whole.train_loss[-1][1] < whole.train_loss[0][1]
    again, _ = train(run, corpus)
    assert again.train_loss == whole.train_loss
    ckpt = tmp_path / "run.ckpt"

    def killed_after_step_4(step: int, _metrics: dict) -> None:
        if step > 4:
            raise KeyboardInterrupt  # the process dies after its step-4 checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(
            run, corpus, checkpoint_path=ckpt, checkpoint_every=4, on_progress=killed_after_step_4
        )
    resumed, _ = train(run, corpus, checkpoint_path=ckpt)
    assert resumed.resumed_from == 4
    assert resumed.val_loss == whole.val_loss


def test_inferred_padding_grows_a_llama_into_the_same_function():
    src, tgt = llama(32), llama(64)
    torch.manual_seed(0)
    source = build_model(src)
    state = {k: v.clone() for k, v in source.state_dict().items()}
    grown = build_model(tgt)
    grown.load_state_dict(grow_inferred(state, src, tgt))
    idx = torch.randint(0, 256, (2, 16))
    torch.testing.assert_close(grown(idx), source(idx), rtol=1e-4, atol=1e-4)
    perturbed = shrink_pad_perturb(state, src, tgt, shrink=0.8, perturb=0.3, seed=1)
    assert {k: tuple(v.shape) for k, v in perturbed.items()} == {
        k: tuple(v.shape) for k, v in grown.state_dict().items()
    }


def test_fused_blocks_are_padded_block_by_block():
    qkv = torch.arange(6.0).repeat_interleave(2).reshape(6, 2)  # (3·2, 2): q, k, v of width 2
    grown = pad_blocks(qkv, (12, 4), 2, 4)
    for block in range(3):
        torch.testing.assert_close(
            grown[4 * block : 4 * block + 2, :2], qkv[2 * block : 2 * block + 2]
        )
        assert not grown[4 * block + 2 : 4 * block + 4].any()
    assert not grown[:, 2:].any()


def test_the_examples_pass_the_model_check(tmp_path):
    for factory, extra in (
        (LLAMA, ["+model.options.head_dim=8"]),
        (NANOGPT, ["model.readout=lm_head", "+model.options.head_dim=8"]),
    ):
        cfg = check_cfg(tmp_path, f"model.factory={factory}", *extra)
        validate(cfg)
        record = check_model(cfg, tmp_path)
        assert record["offenders"] == [] and record["worst"]["worst_slope"] <= REFUSE_SLOPE


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ([], ["lm_head maps the width to the vocabulary", "model.readout=lm_head", "MuShared"]),
        (
            ["model.readout=lm_head", "model.init=own"],
            ["at init", "ignores fan-in", "model.init=mup"],
        ),
    ],
)
def test_a_broken_model_is_refused_by_the_check_naming_module_and_fix(tmp_path, overrides, words):
    cfg = check_cfg(tmp_path, f"model.factory={NANOGPT}", "+model.options.head_dim=8", *overrides)
    validate(cfg)  # it builds and maps tokens to logits: only the coordinate check can tell
    with pytest.raises(ValueError) as refused:
        check_model(cfg, tmp_path)
    message = str(refused.value)
    assert "\n" not in message and message.startswith("model: µP does not hold")
    for word in words:
        assert word in message
    saved = json.loads((tmp_path / "model_check.json").read_text())
    assert saved["offenders"][0]["slope"] > REFUSE_SLOPE  # kept: a rerun does not measure again


def test_a_refused_run_leaves_nothing_and_the_corrected_command_runs(tmp_path):
    """The readout hint followed under the same run name: the refusal left no folder to say
    that it "holds results of a different experiment"."""
    base = [f"model.factory={NANOGPT}", "+model.options.head_dim=8", "run_name=mine"]
    with pytest.raises(ValueError, match=r"model\.readout=lm_head"):
        Pipeline(check_cfg(tmp_path, *base, "stages=[tune]", *FAST)).run()
    assert not (tmp_path / "mine").exists()
    fixed = check_cfg(tmp_path, *base, "model.readout=lm_head", "stages=[tune]", *FAST)
    Pipeline(fixed).run()
    assert (tmp_path / "mine" / "model_check.json").exists()
    assert (tmp_path / "mine" / "study.db").exists()


@pytest.mark.parametrize(
    ("options", "words"),
    [
        # the tutorial's embedding × √d: only the residual stream between blocks shows it
        (["model.readout=lm_head"], ["encoder.layers.", "the residual stream", "sqrt(width)"]),
        # a fixed feed-forward and the readout left unnamed: both fixes, the readout the layer
        # that maps to the vocabulary, not the first width-to-fixed one
        (
            ["+model.options.sqrt_embedding=false", "+model.options.feedforward=96"],
            ["model.readout=lm_head", "mup.MuReadout", "linear1 maps the width to a fixed 96"],
        ),
    ],
)
def test_each_defect_of_a_tutorial_model_is_named_with_its_fix(tmp_path, options, words):
    cfg = check_cfg(tmp_path, f"model.factory={TUTORIAL}", *options)
    validate(cfg)
    with pytest.raises(ValueError) as refused:
        check_model(cfg, tmp_path)
    message = str(refused.value)
    for word in words:
        assert word in message
    assert "MuShared" not in message and "1/head_dim" not in message


def test_the_tutorial_model_without_its_sqrt_width_embedding_passes(tmp_path):
    cfg = check_cfg(
        tmp_path, f"model.factory={TUTORIAL}", "model.readout=lm_head",
        "+model.options.sqrt_embedding=false",
    )  # fmt: skip
    record = check_model(cfg, tmp_path)
    assert record["offenders"] == []
    model = C.build_custom(model_config(cfg, 32, "mup", dict(cfg.ladder.hparams)))
    assert sorted(C.residual_stream_names(model)) == ["encoder.layers.0", "encoder.layers.1"]


HF_CONV1D = """
import torch
from torch import nn


class Conv1D(nn.Module):
    # Hugging Face's Conv1D (transformers.pytorch_utils): a linear layer, weight (in, out)

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        shape = x.size()[:-1] + (self.nf,)
        return torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight).view(shape)


class GPT2Like(nn.Module):
    def __init__(self, width, vocab_size, seq_len):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, width)
        self.c_attn = Conv1D(3 * width, width)
        self.c_fc = Conv1D(4 * width, width)
        self.c_proj = Conv1D(width, 4 * width)
        self.loose = nn.Parameter(torch.randn(width, width) / width**0.5)
        self.lm_head = nn.Linear(width, vocab_size, bias=False)

    def forward(self, idx):
        x = self.wte(idx)
        x = x + self.c_attn(x)[..., : x.size(-1)] @ self.loose
        x = x + self.c_proj(torch.relu(self.c_fc(x)))
        return self.lm_head(x)


def build(width, depth, vocab_size, seq_len):
    return GPT2Like(width, vocab_size, seq_len)
"""


def test_a_conv1d_weight_is_drawn_by_its_fan_in_and_a_bare_matrix_is_named(tmp_path):
    path = tmp_path / "gpt2_like.py"
    path.write_text(HF_CONV1D)
    cfg = CustomConfig(
        factory=f"{path}:build", d_model=128, base_d_model=32, seq_len=16, readout="lm_head",
        init_std=1.0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = C.build_custom(cfg)
    fan_in = {"c_attn.weight": 128, "c_fc.weight": 128, "c_proj.weight": 512, "loose": 128}
    for name, n in fan_in.items():
        std = dict(model.named_parameters())[name].std().item()
        assert std == pytest.approx(1.0 / math.sqrt(n), rel=0.05), name
    assert C.fan_in_axes(model)["c_fc.weight"] == 0 and C.fan_in_axes(model)["lm_head.weight"] == 1
    assert C.unread_layouts(model) == ["loose"]
    role, _ = C.roles(model, cfg)["c_proj.weight"]
    assert role is Role.HIDDEN
    ladder = check_cfg(tmp_path, f"model.factory={path}:build", "model.readout=lm_head")
    assert "the layout of loose: musweep reads each as (out, in)" in layout_warning(ladder)
    assert layout_warning(check_cfg(tmp_path, f"model.factory={LLAMA}")) is None


BAD_FACTORIES = """
import torch
from torch import nn
from mup import MuReadout

def not_a_module(width, depth, vocab_size, seq_len):
    return "a model"

class Fixed(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, 32)
        self.head = MuReadout(32, vocab_size)
    def forward(self, idx):
        return self.head(self.embed(idx))

def ignores_width(width, depth, vocab_size, seq_len):
    return Fixed(vocab_size)

class Model(nn.Module):
    def __init__(self, width, vocab_out):
        super().__init__()
        self.embed = nn.Embedding(256, width)
        self.hidden = nn.Linear(width, width)
        self.head = MuReadout(width, vocab_out)
    def forward(self, idx):
        return self.head(self.hidden(self.embed(idx)))

def wrong_vocabulary(width, depth, vocab_size, seq_len):
    return Model(width, vocab_size + 1)

class Tied(nn.Module):
    def __init__(self, width, vocab_size):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.hidden = nn.Linear(width, width)
    def forward(self, idx):
        return self.hidden(self.embed(idx)) @ self.embed.weight.T

def functional_readout(width, depth, vocab_size, seq_len):
    return Tied(width, vocab_size)

def raises(width, depth, vocab_size, seq_len):
    raise RuntimeError("out of ideas")

def other_names(d_model, n_layer, vocab_size, seq_len):
    return Model(d_model, vocab_size)
"""


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.factory=null"], "model=custom needs the function"),
        (["model.factory=no_such_package.model:build"], "cannot import no_such_package.model"),
        (["model.factory=missing.py:build"], "no file missing.py"),
        (["model.factory=BAD:nothing_here"], "has no function 'nothing_here'"),
        (["model.factory=builds_a_model"], "must be 'package.module:function'"),
        (["model.factory=BAD:not_a_module"], "returned a str, not a torch.nn.Module"),
        (["model.factory=BAD:ignores_width"], "ignores width"),
        (["model.factory=BAD:wrong_vocabulary"], "(B, T, vocab_size) = (2, 8, 256)"),
        (["model.factory=BAD:wrong_vocabulary"], "got (2, 8, 257)"),
        (["model.factory=BAD:other_names"], "must take width, depth, vocab_size, seq_len"),
        (["model.factory=BAD:functional_readout"], "cannot identify the readout"),
        (["model.factory=BAD:raises"], "raised RuntimeError at width 32: out of ideas"),
        ([f"model.factory={LLAMA}", "model.readout=lm_head"], "no module 'lm_head'"),
        (
            [f"model.factory={LLAMA}", "+model.options.heads=4"],
            "takes no keyword 'heads'",
        ),
        (
            [f"model.factory={NANOGPT}", "ladder.target_n_layer=4"],
            "needs CompleteP's branch multiplier",
        ),
        (
            [f"model.factory={LLAMA}", "warmstart=function_preserving"],
            "needs the built-in GPT's architecture",
        ),
    ],
)
def test_a_bad_model_is_one_line_before_any_job(tmp_path, overrides, message):
    bad = tmp_path / "bad_factories.py"
    bad.write_text(BAD_FACTORIES)
    overrides = [o.replace("BAD", str(bad)) for o in overrides]
    cfg = check_cfg(tmp_path, *overrides)
    with pytest.raises(ValueError) as refused:
        validate(cfg)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


LAZY_IMPORT = """
def _load():
    try:
        raise RuntimeError("operator torchvision::nms does not exist")
    except RuntimeError as e:  # as transformers' lazy modules wrap what failed beneath them
        raise RuntimeError(f"Failed to import a.models.b because of:\\n{e}") from e

_load()
"""


@pytest.mark.parametrize(
    ("source", "words"),
    [
        (
            LAZY_IMPORT,
            ["importing", "RuntimeError: operator torchvision::nms does not exist", "match torch"],
        ),
        ("import no_such_dependency\n", ["ModuleNotFoundError: No module named"]),
    ],
)
def test_a_factory_that_fails_to_import_is_refused_with_the_cause(tmp_path, source, words):
    path = tmp_path / "lazy.py"
    path.write_text(source)
    with pytest.raises(ValueError) as refused:
        C.load_factory(f"{path}:build")
    message = str(refused.value)
    assert "\n" not in message and "PYTHONPATH" not in message  # found: only its import failed
    for word in words:
        assert word in message


def test_the_search_leaves_out_what_the_model_does_not_take(tmp_path):
    from sweep.config import tunable, unused_search

    nano = check_cfg(tmp_path, f"model.factory={NANOGPT}", "model.readout=lm_head")
    assert "alpha_attn" not in tunable(nano) and {"alpha_in", "alpha_out", "init_std"} <= set(
        tunable(nano)
    )
    assert unused_search(nano) == ["alpha_attn"]
    own = check_cfg(tmp_path, f"model.factory={LLAMA}", "model.init=own")
    assert unused_search(own) == ["init_std"]


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        (
            "llama",
            [f"model.factory={LLAMA}", "+model.options.head_dim=8", "+model.options.kv_group=2"],
        ),
        (
            "nanogpt",
            [f"model.factory={NANOGPT}", "model.readout=lm_head", "+model.options.head_dim=8"],
        ),
    ],
)
def test_each_example_runs_the_whole_pipeline(tmp_path, corpus, name, overrides):
    cfg = compose_config(
        f"out_root={tmp_path}",
        "+ladder=gpt_tiny",
        "model=custom",
        f"run_name={name}",
        *overrides,
        *FAST,
    )
    summary = Pipeline(cfg).run()
    assert mismatches(json.loads((tmp_path / name / "summary.json").read_text()), Summary) == []
    assert summary["tune"]["n_trials"] == 3
    transfer = summary["transfer"]
    for p in ("mup", "sp"):
        assert set(transfer[p]["optimum_log2_lr"]) == {"32", "64"}
    assert transfer["verdict"]
    assert math.isfinite(summary["verify"]["regret"])
    warm, cold = summary["target"]["warm"], summary["target"]["cold"]
    assert math.isfinite(warm["final_val_loss"]) and math.isfinite(cold["final_val_loss"])
    assert warm["val_curve"][0][1] < cold["val_curve"][0][1]  # the source's training carried over
    assert (tmp_path / name / "report" / "report.html").exists()
    assert json.loads((tmp_path / name / "model_check.json").read_text())["offenders"] == []
    model = summary["model"]
    assert model["kind"] == "custom" and model["factory"].endswith(f"{name}.py:build")
    assert model["check"]["worst_slope"] <= REFUSE_SLOPE and model["check"]["widths"][0] == 32
    assert ("alpha_attn" in model["tunable"]) == (name == "llama")  # nanoGPT takes no α_attn
    assert set(summary["tune"]["best_params"]) == set(model["tunable"]) - {
        "output_std",
        "weight_decay",
    }
    tuned = yaml.safe_load((tmp_path / name / "tuned.yaml").read_text())
    run = run_from_record(tuned)  # what `sweep.single --from tuned.yaml` trains
    assert isinstance(run.model, CustomConfig) and run.model.d_model == 128
    assert run.model.factory == model["factory"]
    assert run.optim.lr == tuned["target"]["hparams"]["lr"]
    assert tuned["target"]["carried"] == tuned["proxy"]["hparams"]
    rules = tuned["target"]["parameters"]
    assert any(".*." in key for key in rules)  # the blocks collapsed, whatever their name
    assert {rule["role"] for rule in rules.values()} == {"input", "hidden", "vector", "output"} - (
        {"output"} if name == "nanogpt" else set()
    )  # nanoGPT's readout is its (tied) embedding


TUPLE_FACTORY = """
import importlib.util
from torch import nn

spec = importlib.util.spec_from_file_location("llama_example", {llama!r})
llama = importlib.util.module_from_spec(spec)
spec.loader.exec_module(llama)


class WithLoss(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, idx):
        return self.inner(idx), None  # nanoGPT's (logits, loss)


def build(width, depth, vocab_size, seq_len):
    return WithLoss(llama.build(width, depth, vocab_size, seq_len))
"""


def test_a_model_returning_logits_and_loss_is_taken_at_its_logits(tmp_path):
    path = tmp_path / "with_loss.py"
    path.write_text(TUPLE_FACTORY.format(llama=str(EXAMPLES / "llama.py")))
    cfg = CustomConfig(factory=f"{path}:build", d_model=64, base_d_model=32, seq_len=32)
    check_custom(cfg)
    torch.manual_seed(0)
    logits = build_model(cfg)(torch.randint(0, 256, (2, 16)))
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 16, 256)


READOUTS = """
import torch
from torch import nn
from mup import MuReadout


class Biased(nn.Module):
    def __init__(self, width, vocab_size):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.hidden = nn.Linear(width, width, bias=False)
        self.out = nn.Linear(width, vocab_size, bias=True)

    def forward(self, idx):
        return self.out(self.hidden(self.embed(idx)))


def biased(width, depth, vocab_size, seq_len):
    return Biased(width, vocab_size)


class Mu(nn.Module):
    def __init__(self, width, vocab_size, **readout):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.hidden = nn.Linear(width, width, bias=False)
        self.head = MuReadout(width, vocab_size, bias=False, **readout)

    def forward(self, idx):
        return self.head(self.hidden(self.embed(idx)))


def own_multiplier(width, depth, vocab_size, seq_len):
    return Mu(width, vocab_size, output_mult=2.0)


def zero_readout(width, depth, vocab_size, seq_len):
    return Mu(width, vocab_size, readout_zero_init=True)


def forwards(width, depth, vocab_size, seq_len, **kwargs):
    return Mu(width, vocab_size)  # takes anything, uses none of it
"""


@pytest.fixture
def readouts(tmp_path) -> str:
    path = tmp_path / "readouts.py"
    path.write_text(READOUTS)
    return str(path)


def test_a_named_readout_s_bias_is_not_scaled_with_width(readouts):
    cfg = CustomConfig(factory=f"{readouts}:biased", d_model=128, base_d_model=32, readout="out")
    model = build_model(cfg)
    with torch.no_grad():
        model.out.weight.zero_()
        model.out.bias.fill_(1.0)
    logits = model(torch.randint(0, 256, (2, 8)))
    torch.testing.assert_close(logits, torch.ones_like(logits))  # as MuReadout: only W·x / m


def test_alpha_out_multiplies_a_readout_s_own_multiplier(readouts):
    cfg = CustomConfig(factory=f"{readouts}:own_multiplier", d_model=64, base_d_model=32)
    assert build_model(replace(cfg, alpha_out=1.5)).head.output_mult == 2.0 * 1.5
    torch.testing.assert_close(
        logits_of_fresh(replace(cfg, alpha_out=1.5)), 1.5 * logits_of_fresh(cfg)
    )


def test_a_zero_initialised_mureadout_stays_zero(readouts):
    model = build_model(
        CustomConfig(factory=f"{readouts}:zero_readout", d_model=64, base_d_model=32)
    )
    assert not model.head.weight.any() and model.hidden.weight.any()


def test_multipliers_reach_a_factory_only_by_name(readouts):
    """A factory taking **kwargs may drop them: the tool applies α_in and α_out itself and
    does not tune α_attn, which only a factory that names it could apply."""
    cfg = CustomConfig(factory=f"{readouts}:forwards", d_model=64, base_d_model=32)
    assert "alpha_attn" not in C.tunable(cfg) and {"alpha_in", "alpha_out"} <= C.tunable(cfg)
    one = logits_of_fresh(cfg)
    torch.testing.assert_close(logits_of_fresh(replace(cfg, alpha_out=3.0)), 3 * one)


def test_a_target_width_the_factory_cannot_build_is_one_line(tmp_path):
    cfg = check_cfg(tmp_path, f"model.factory={LLAMA}", "ladder.target=136")  # head_dim 16
    with pytest.raises(ValueError, match="raised ValueError at width 136: width 136 must be"):
        validate(cfg)


def test_nested_options_are_one_line(tmp_path):
    cfg = check_cfg(tmp_path, f"model.factory={LLAMA}", "+model.options.head_dim={a: 1}")
    with pytest.raises(ValueError, match=r"model.options.head_dim: a factory keyword must be"):
        validate(cfg)


def test_an_edited_model_file_is_not_mixed_with_its_old_results(tmp_path):
    factory = tmp_path / "model.py"
    factory.write_text((EXAMPLES / "llama.py").read_text())
    cfg = check_cfg(
        tmp_path, f"model.factory={factory}:build", "+model.options.head_dim=8", "stages=[plan]"
    )
    Pipeline(cfg).run()
    factory.write_text(factory.read_text() + "\n# tuned the norm's eps\n")
    C.load_factory.cache_clear()
    with pytest.raises(StageError, match="before its source file changed"):
        Pipeline(cfg).run()


def test_pad_reports_how_exactly_it_kept_the_function():
    src, tgt = llama(32), llama(64)
    torch.manual_seed(0)
    state = build_model(src).state_dict()
    assert pad_function_gap(state, src, tgt) < 1e-4
    nano = CustomConfig(factory=NANOGPT, d_model=32, base_d_model=32, seq_len=32, readout="lm_head")
    torch.manual_seed(0)
    gap = pad_function_gap(build_model(nano).state_dict(), nano, nano.at_width(64))
    assert gap > 1e-3  # a LayerNorm's mean moves with the zero coordinates


@pytest.mark.parametrize(
    "model", [[], ["model=custom", f"model.factory={LLAMA}"]], ids=["gpt", "llama"]
)
def test_a_token_file_of_a_wider_vocabulary_sizes_the_model(tmp_path, corpus, model):
    """Token ids up to 999: every model of the ladder reads and predicts 1000 tokens."""
    import numpy as np

    from sweep.config import data_config, model_config, run_config
    from sweep.core.data import load_corpus

    (tmp_path / "ids.bin").write_bytes((np.arange(60_000) % 1000).astype(np.uint16).tobytes())
    cfg = compose_config(
        f"out_root={tmp_path}",
        "+ladder=gpt_tiny",
        "data=tokens",
        f"data.path={tmp_path / 'ids.bin'}",
        *model,
    )
    validate(cfg)
    resolve_vocabulary(cfg)
    assert model_config(cfg, 64, "mup", dict(cfg.ladder.hparams)).vocab_size == 1000
    run = run_config(cfg, 32, "mup", dict(cfg.ladder.hparams), steps=2, seed=0)
    result, _ = train(run, load_corpus(data_config(cfg)))
    assert result.status == "completed"
