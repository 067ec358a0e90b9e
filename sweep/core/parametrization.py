"""µP and SP for the GPT of `sweep.core.model`: every width-dependent rule of docs/methods.md §1, in one file.

`m = d_model / base_d_model`. Each parameter has a role (`role_of`); every scale below is a
function of the role, the parametrization, `m` and the depth ratio `L / L_base` only.

| rule (docs/methods.md §1)                   | µP                   | SP               | function          |
|-------------------------------------|----------------------|------------------|-------------------|
| token/position embedding init std   | σ_in                 | σ_in             | `init_std`        |
| hidden matrix init std              | σ / sqrt(fan_in)     | σ / sqrt(fan_in) | `init_std`        |
| readout init std                    | σ_out / sqrt(d_base) | σ_out / sqrt(d)  | `init_std`        |
| query / readout zero init (options) | 0                    | 0                | `init_std`        |
| norm gains                          | 1                    | 1                | `init_parameters` |
| hidden matrix Adam LR (× depth)     | η / m                | η                | `lr_multiplier`   |
| input, readout, vector Adam LR      | η                    | η                | `lr_multiplier`   |
| decoupled weight decay, hidden (×)  | wd·m (lr·wd const.)  | wd               | `wd_multiplier`   |
| Adam ε, hidden (`scale_eps`)        | ε / m                | ε                | `eps_multiplier`  |
| embedding output multiplier         | α_in                 | α_in             | `input_multiplier`|
| readout multiplier                  | α_out / m            | α_out            | `readout_multiplier` |
| attention logit scale               | α_attn·sqrt(h_b) / k | α_attn / sqrt(k) | `attention_scale` |
| residual branch multiplier          | (L_b/L)^α            | (L_b/L)^α        | `residual_multiplier` |
| RMSNorm eps                         | 1.2e-38              | 1.2e-38          | `norm_eps`        |

(× depth): times (L/L_b)^(α-1) for the LR and (L/L_b)^(1-α) for the weight decay, in both.
k is the key/query head size (the head size unless a grown model sets `key_size`), h_b the base
head size `d_head`; L is the depth, L_b `base_n_layer` (CompleteP, arXiv 2505.01618: with
`base_n_layer` unset L_b = L and both depth factors are 1; CompleteP gives no depth rule for weight
decay, so the hidden one keeps lr·wd constant in depth as in width). The RMSNorm eps only guards
0/0 (float32's smallest normal number): residual coordinates are Θ(1) under µP, and an eps of the
usual 1e-6 would keep both ways of growing the hidden size from being exact: zero-padding divides
the mean square by D/d (`sweep.grow.pad`, `sweep.grow.function_preserving`), tiling keeps it
(`sweep.grow.rc_sampling`), and no one eps rule is exact for both.

With `head_scaling="count"` (fixed head size) µP's 1/h and SP's 1/sqrt(h) differ only by a
width-independent constant; the sqrt(h_base) factor makes the µP scale equal the
SP scale at the base, so that at m = 1 the two parametrizations compute the same function (mup's
"backward compatible" property, tested). Weight decay is decoupled (AdamW multiplies it by the LR),
so `wd · m` keeps `lr · wd` constant across widths for hidden matrices, as `mup.MuAdamW` does.
Norm gains take no weight decay.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from enum import StrEnum
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from sweep.core.model import GPTConfig


PARAMETRIZATIONS = ("mup", "sp")  # µP, and standard (PyTorch-style) for contrast


class Role(StrEnum):
    INPUT = "input"  # token and position embeddings (and a tied readout)
    HIDDEN = "hidden"  # q, k, v, attention output, MLP in and out
    OUTPUT = "output"  # the untied readout
    VECTOR = "vector"  # RMSNorm gains


INPUT_PARAMS = ("wte.weight", "wpe.weight")
OUTPUT_PARAMS = ("readout.weight",)


def role_of(name: str, param: torch.Tensor) -> Role:
    """The µP role of a parameter of `sweep.core.model.GPT`, from its name and rank."""
    if name in INPUT_PARAMS:
        return Role.INPUT
    if name in OUTPUT_PARAMS:
        return Role.OUTPUT
    if param.ndim == 1:
        return Role.VECTOR
    if param.ndim == 2:
        return Role.HIDDEN
    raise ValueError(f"parameter {name} of shape {tuple(param.shape)} has no µP role")


def width_mult(cfg: GPTConfig) -> float:
    """m: how many times wider this model is than the µP base. SP ignores the base (m = 1)."""
    return cfg.d_model / cfg.base_width if cfg.parametrization == "mup" else 1.0


def init_std(cfg: GPTConfig, name: str, role: Role, fan_in: int) -> float:
    """Standard deviation of the normal init of a matrix parameter."""
    if role is Role.INPUT:
        return cfg.input_std
    if role is Role.OUTPUT:
        if cfg.zero_readout:
            return 0.0
        return cfg.output_std / math.sqrt(cfg.d_model / width_mult(cfg))  # µP: d_base; SP: d
    if role is Role.HIDDEN:
        if cfg.zero_query and name.endswith("attn.q.weight"):
            return 0.0
        return cfg.init_std / math.sqrt(fan_in)
    raise ValueError(f"{name}: role {role} has no init std (vectors start at 1)")


def depth_mult(cfg: GPTConfig) -> float:
    """L / L_base: how many times deeper this model is than the depth HPs were tuned at."""
    return cfg.n_layer / cfg.depth_base


def residual_multiplier(cfg: GPTConfig) -> float:
    """CompleteP's factor (L_base / L)^α on every attention and MLP branch output."""
    return depth_mult(cfg) ** -cfg.depth_alpha


def lr_multiplier(cfg: GPTConfig, role: Role, m: float | None = None) -> float:
    """`m`: the parameter's own width multiplier (a custom model's fan-in multiplier, from
    `sweep.core.custom`); None: the GPT's, `width_mult(cfg)`."""
    if role is not Role.HIDDEN:
        return 1.0
    m = width_mult(cfg) if m is None else m
    return depth_mult(cfg) ** (cfg.depth_alpha - 1.0) / m


def wd_multiplier(cfg: GPTConfig, role: Role, m: float | None = None) -> float:
    if role is Role.VECTOR:
        return 0.0
    if role is not Role.HIDDEN:
        return 1.0
    m = width_mult(cfg) if m is None else m
    return m * depth_mult(cfg) ** (1.0 - cfg.depth_alpha)  # 1 / lr_multiplier


def eps_multiplier(cfg: GPTConfig, role: Role, scale_eps: bool, m: float | None = None) -> float:
    m = width_mult(cfg) if m is None else m
    return 1.0 / m if scale_eps and role is Role.HIDDEN else 1.0


def input_multiplier(cfg: GPTConfig) -> float:
    return cfg.alpha_in


def readout_multiplier(cfg: GPTConfig) -> float:
    return cfg.alpha_out / width_mult(cfg)


def attention_scale(cfg: GPTConfig) -> float:
    if cfg.parametrization == "mup":
        return cfg.alpha_attn * math.sqrt(cfg.d_head) / cfg.d_key  # d_head: base head size
    return cfg.alpha_attn / math.sqrt(cfg.d_key)


def norm_eps(cfg: GPTConfig) -> float:
    """RMSNorm eps: negligible next to any mean square, so growth stays exact (module docstring).
    The same at every width and in both parametrizations; `cfg` keeps the rule's signature."""
    return torch.finfo(torch.float32).tiny


@torch.no_grad()
def init_parameters(model: nn.Module) -> None:
    """Initialise every parameter of a GPT by its role (draws in `named_parameters` order)."""
    for name, p in model.named_parameters():
        role = role_of(name, p)
        if role is Role.VECTOR:
            p.fill_(1.0)
        else:
            p.normal_(0.0, init_std(model.cfg, name, role, fan_in=p.shape[1]))


def param_groups(
    model: nn.Module, lr: float, weight_decay: float, eps: float, scale_eps: bool = False
) -> list[dict]:
    """AdamW parameter groups of a GPT, one per role, with the µP LR / wd / ε multipliers."""
    named = ((name, p, role_of(name, p), None) for name, p in model.named_parameters())
    return grouped(named, model.cfg, lr, weight_decay, eps, scale_eps)


def grouped(
    named: Iterable[tuple[str, torch.Tensor, Role, float | None]],
    cfg: GPTConfig,
    lr: float,
    weight_decay: float,
    eps: float,
    scale_eps: bool,
) -> list[dict]:
    """AdamW groups of (name, parameter, role, width multiplier or None for the GPT's), one per
    role and multiplier, with this file's LR / wd / ε rules applied.

    Every parameter of a group shares its multipliers, so one group each keeps AdamW's fused
    multi-tensor step. Each group keeps its `lr_mult` so the LR schedule can set
    `lr = schedule(step) * lr_mult`, and its parameter `names` so the rules can be audited.
    """
    groups: dict[tuple[Role, float | None], dict] = {}
    for name, p, role, m in named:
        if (role, m) not in groups:
            lr_mult = lr_multiplier(cfg, role, m)
            groups[role, m] = {
                "params": [],
                "names": [],
                "role": str(role),
                "lr_mult": lr_mult,
                "lr": lr * lr_mult,
                "weight_decay": weight_decay * wd_multiplier(cfg, role, m),
                "eps": eps * eps_multiplier(cfg, role, scale_eps, m),
            }
        groups[role, m]["params"].append(p)
        groups[role, m]["names"].append(name)
    return list(groups.values())
