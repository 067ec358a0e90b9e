"""The µP, SP and CompleteP rules as a table of pure functions, for every model: each scale is a
function of a parameter's role, its width multiplier m (its fan-in's growth over the µP base; the
model's `d_model / base_d_model` for the built-in GPT; 1 in SP) and the depth ratio `L / L_base`,
with the tuned values. The built-in GPT names its parameters' roles in
`sweep.core.parametrization`; a user's model gets them from the shapes `mup` infers
(`sweep.core.custom`); both take every rule from here, so they cannot disagree.

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
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

FLOAT32_TINY = 2.0**-126  # the smallest normal float32: torch.finfo(torch.float32).tiny
PARAMETRIZATIONS = ("mup", "sp")  # µP, and standard (PyTorch-style) for contrast


class Role(StrEnum):
    INPUT = "input"  # token and position embeddings (and a tied readout)
    HIDDEN = "hidden"  # q, k, v, attention output, MLP in and out
    OUTPUT = "output"  # the untied readout
    VECTOR = "vector"  # norm gains (and a user's model's biases)


@dataclass(frozen=True)
class Depth:
    """CompleteP's depth: L / L_base (`ratio`) and the exponent α of the branch multiplier."""

    ratio: float = 1.0
    alpha: float = 1.0


def width_multiplier(d_model: int, base_width: int, parametrization: str) -> float:
    """m: how many times wider the model is than the µP base. SP ignores the base (m = 1)."""
    return d_model / base_width if parametrization == "mup" else 1.0


def init_std(
    role: Role, fan_in: int, m: float, *, sigma: float, sigma_in: float, sigma_out: float
) -> float:
    """Standard deviation of the normal init of a matrix: σ_in for the input, σ/sqrt(fan_in)
    hidden, σ_out/sqrt(fan_in/m) for the readout (µP: the base's fan-in; SP: its own)."""
    if role is Role.INPUT:
        return sigma_in
    if role is Role.HIDDEN:
        return sigma / math.sqrt(fan_in)
    if role is Role.OUTPUT:
        return sigma_out / math.sqrt(fan_in / m)
    raise ValueError(f"role {role} has no init std (vectors start at 1)")


def lr_multiplier(role: Role, m: float, depth: Depth) -> float:
    """Adam's LR multiplier: 1/m × (L/L_b)^(α-1) for hidden matrices, 1 for everything else."""
    if role is not Role.HIDDEN:
        return 1.0
    return depth.ratio ** (depth.alpha - 1.0) / m


def wd_multiplier(role: Role, m: float, depth: Depth) -> float:
    """Decoupled weight decay's multiplier: 1 / the LR's for hidden matrices (lr·wd constant),
    none for vectors, 1 for the input and the readout."""
    if role is Role.VECTOR:
        return 0.0
    if role is not Role.HIDDEN:
        return 1.0
    return m * depth.ratio ** (1.0 - depth.alpha)


def eps_multiplier(role: Role, m: float, scale_eps: bool) -> float:
    """Adam's ε multiplier: 1/m for hidden matrices when `scale_eps`, else 1."""
    return 1.0 / m if scale_eps and role is Role.HIDDEN else 1.0


def readout_multiplier(alpha_out: float, m: float) -> float:
    """The readout's forward multiplier α_out / m."""
    return alpha_out / m


def residual_multiplier(depth: Depth) -> float:
    """CompleteP's factor (L_base / L)^α on every residual branch's output."""
    return depth.ratio**-depth.alpha


def attention_scale(parametrization: str, alpha_attn: float, base_head: int, d_key: int) -> float:
    """The attention logit scale: α_attn·sqrt(h_b)/k in µP (equal to SP's at the base head
    size h_b), α_attn/sqrt(k) in SP."""
    if parametrization == "mup":
        return alpha_attn * math.sqrt(base_head) / d_key
    return alpha_attn / math.sqrt(d_key)


def norm_eps() -> float:
    """RMSNorm eps: negligible next to any mean square, so growth stays exact (module
    docstring); the same at every width and in both parametrizations."""
    return FLOAT32_TINY


def grouped(
    named: Iterable[tuple[str, torch.Tensor, Role, float]],
    depth: Depth,
    lr: float,
    weight_decay: float,
    eps: float,
    scale_eps: bool,
) -> list[dict]:
    """AdamW groups of (name, parameter, role, width multiplier), one per role and multiplier,
    with this table's LR / wd / ε rules applied.

    Every parameter of a group shares its multipliers, so one group each keeps AdamW's fused
    multi-tensor step. Each group keeps its `lr_mult` so the LR schedule can set
    `lr = schedule(step) * lr_mult`, and its parameter `names` so the rules can be audited.
    """
    groups: dict[tuple[Role, float], dict] = {}
    for name, p, role, m in named:
        if (role, m) not in groups:
            lr_mult = lr_multiplier(role, m, depth)
            groups[role, m] = {
                "params": [],
                "names": [],
                "role": str(role),
                "lr_mult": lr_mult,
                "lr": lr * lr_mult,
                "weight_decay": weight_decay * wd_multiplier(role, m, depth),
                "eps": eps * eps_multiplier(role, m, scale_eps),
            }
        groups[role, m]["params"].append(p)
        groups[role, m]["names"].append(name)
    return list(groups.values())
