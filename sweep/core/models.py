"""The model interface: every stage builds, optimises and measures a model through these
functions, whichever model it is.

Two kinds of model config implement it: `GPTConfig`, the built-in GPT whose µP rules are
written out in `sweep.core.parametrization`, and `CustomConfig`, a user's factory made µP from
the shapes `mup` infers (`sweep.core.custom`). Both are frozen, hashable and serialisable, and
answer `d_model`, `base_width`, `n_layer`, `depth_base`, `seq_len`, `vocab_size`,
`parametrization`, `at_width` and `to_dict`. Pure: no files.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sweep.core import custom as C
from sweep.core import mup_rules as R
from sweep.core import parametrization as P
from sweep.core.custom import CustomConfig
from sweep.core.model import GPT, GPTConfig

ModelConfig = GPTConfig | CustomConfig
CONFIG_ATTRIBUTE = "_musweep_config"  # the config a custom model was built from


def is_builtin(cfg: ModelConfig) -> bool:
    return isinstance(cfg, GPTConfig)


def build_model(cfg: ModelConfig) -> nn.Module:
    """The model at its width and depth, initialised from the global RNG (on the CPU)."""
    if is_builtin(cfg):
        return GPT(cfg)
    model = C.build_custom(cfg)
    object.__setattr__(model, CONFIG_ATTRIBUTE, cfg)  # not a submodule, not in the state dict
    return model


def config_of(model: nn.Module) -> ModelConfig:
    if isinstance(model, GPT):
        return model.cfg
    cfg = getattr(model, CONFIG_ATTRIBUTE, None)
    if cfg is None:
        raise ValueError("the model was not built by sweep.core.models.build_model")
    return cfg


def model_from_dict(data: dict[str, Any]) -> ModelConfig:
    """A model config from its `to_dict` (a run record, a checkpoint, a tuned file)."""
    if data.get("factory"):
        return CustomConfig.from_dict(data)
    return GPTConfig(**{k: v for k, v in data.items() if k != "factory"})


def param_groups(
    model: nn.Module, lr: float, weight_decay: float, eps: float, scale_eps: bool = False
) -> list[dict]:
    """AdamW groups with the µP (or SP) LR, weight decay and ε multipliers of every parameter;
    each keeps its `lr_mult` (for the schedule), `role` and parameter `names`."""
    cfg = config_of(model)
    if is_builtin(cfg):
        return P.param_groups(model, lr, weight_decay, eps, scale_eps)
    by_name = C.roles(model, cfg)
    named = ((name, p, *by_name[name]) for name, p in model.named_parameters())
    return R.grouped(named, C.depth(cfg), lr, weight_decay, eps, scale_eps)


def init_stds(model: nn.Module) -> dict[str, float | None]:
    """The std every parameter is drawn with, by name (the GPT's gains: 1.0, their constant
    value); None where a custom model keeps the factory's init (its vectors; all under
    init=own)."""
    cfg = config_of(model)
    if is_builtin(cfg):
        stds = {}
        for name, p in model.named_parameters():
            role = P.role_of(name, p)
            stds[name] = 1.0 if role is P.Role.VECTOR else P.init_std(cfg, name, role, p.shape[-1])
        return stds
    by_name, axes = C.roles(model, cfg), C.fan_in_axes(model)
    stds = {}
    for name, p in model.named_parameters():
        role, m = by_name[name]
        kept = role is P.Role.VECTOR or cfg.init == "own"
        stds[name] = None if kept else C.init_std(cfg, role, tuple(p.shape), m, axes.get(name, 1))
    return stds


def tracked_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The modules whose outputs the coordinate check follows, and the logits (the model).

    The GPT: embedding, each attention, MLP and block. A custom model: every module that holds
    parameters of its own (linear layers, embeddings, norms), by its name, and the residual
    stream after each block (`residual_stream`).
    """
    if isinstance(model, GPT):
        tracked = {"embedding": model.wte}
        for i, block in enumerate(model.blocks):
            tracked |= {
                f"block{i}.attn": block.attn,
                f"block{i}.mlp": block.mlp,
                f"block{i}": block,
            }
        return tracked | {"logits": model}
    tracked = {
        name: module
        for name, module in model.named_modules()
        if name and any(True for _ in module.parameters(recurse=False))
    }
    return tracked | residual_stream(model) | {"logits": model}


def residual_stream(model: nn.Module) -> dict[str, nn.Module]:
    """The blocks whose outputs are the residual stream between blocks
    (`custom.residual_stream_names`): a model can scale it with width outside any module with
    parameters (an embedding multiplied by √width)."""
    modules = dict(model.named_modules())
    return {name: modules[name] for name in sorted(C.residual_stream_names(model))}


def skeleton_model(cfg: ModelConfig) -> nn.Module:
    """The model for its shapes, groups and rules only: built on the meta device (no memory, no
    RNG draws; a factory that cannot build there is built on the CPU)."""
    return C.skeleton(lambda: build_model(cfg))


def state_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of the model's state dict."""
    return {name: tuple(t.shape) for name, t in skeleton_model(cfg).state_dict().items()}


def describe(cfg: ModelConfig) -> str:
    """One line for logs: which model, at which width and depth."""
    if is_builtin(cfg):
        return (
            f"GPT {cfg.parametrization} d_model={cfg.d_model} (base {cfg.base_width}) "
            f"heads={cfg.n_heads}x{cfg.head_size} layers={cfg.n_layer}"
        )
    return (
        f"{cfg.factory} {cfg.parametrization} width={cfg.d_model} (base {cfg.base_width}) "
        f"layers={cfg.n_layer}"
    )


def width_multiplier(cfg: ModelConfig) -> float:
    return R.width_multiplier(cfg.d_model, cfg.base_width, cfg.parametrization)


def depth_multiplier(cfg: ModelConfig) -> float:
    return cfg.n_layer / cfg.depth_base


def multipliers(cfg: ModelConfig) -> dict[str, float]:
    """The forward multipliers µP and CompleteP apply at this width and depth."""
    if is_builtin(cfg):
        return {
            "embedding_output": P.input_multiplier(cfg),
            "readout": P.readout_multiplier(cfg),
            "attention_logit_scale": P.attention_scale(cfg),
            "residual_branch": P.residual_multiplier(cfg),
            "width_multiplier_m": P.width_mult(cfg),
            "depth_multiplier": P.depth_mult(cfg),
        }
    return {
        "embedding_output": cfg.alpha_in,
        "readout": R.readout_multiplier(cfg.alpha_out, width_multiplier(cfg)),
        "residual_branch": C.residual_multiplier(cfg),
        "width_multiplier_m": width_multiplier(cfg),
        "depth_multiplier": depth_multiplier(cfg),
    } | ({"alpha_attn": cfg.alpha_attn} if C.names(cfg.factory, "alpha_attn") else {})


def source_digest(cfg: ModelConfig) -> str:
    """A hash of a custom model's source file ('' for the built-in GPT, which is this package)."""
    return "" if is_builtin(cfg) else C.source_digest(cfg.factory)


def unread_layouts(cfg: ModelConfig) -> list[str]:
    """A custom model's matrices whose fan-in no layer states (`custom.unread_layouts`): the
    tool reads them as (out, in, ...)."""
    return [] if is_builtin(cfg) else C.unread_layouts(skeleton_model(cfg))


def refusal_hint(cfg: ModelConfig, offenders: list[dict[str, Any]]) -> str | None:
    """The likely fix for a model the coordinate check refused (`offenders`: module, step,
    slope, steepest first), read off the model (None when nothing specific shows)."""
    return None if is_builtin(cfg) else C.refusal_hint(cfg, offenders)
