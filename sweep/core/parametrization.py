"""µP and SP for the GPT of `sweep.core.model`: which role each of its parameters has, and the
rules of `sweep.core.mup_rules` (the table, docs/methods.md §1) read with the GPT's config.

`m = d_model / base_d_model` for every matrix of the GPT; the depth ratio is `n_layer /
base_n_layer`. With `head_scaling="count"` (fixed head size) µP's 1/h and SP's 1/sqrt(h) differ
only by a width-independent constant; the sqrt(h_base) factor makes the µP scale equal the SP
scale at the base, so that at m = 1 the two parametrizations compute the same function (mup's
"backward compatible" property, tested).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from sweep.core import mup_rules as R
from sweep.core.mup_rules import PARAMETRIZATIONS, Depth, Role

if TYPE_CHECKING:
    from sweep.core.model import GPTConfig

__all__ = ["PARAMETRIZATIONS", "Role"]

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
    return R.width_multiplier(cfg.d_model, cfg.base_width, cfg.parametrization)


def depth_mult(cfg: GPTConfig) -> float:
    """L / L_base: how many times deeper this model is than the depth HPs were tuned at."""
    return cfg.n_layer / cfg.depth_base


def depth(cfg: GPTConfig) -> Depth:
    return Depth(depth_mult(cfg), cfg.depth_alpha)


def init_std(cfg: GPTConfig, name: str, role: Role, fan_in: int) -> float:
    """Standard deviation of the normal init of a matrix parameter (the zero-init options
    first: a zero readout, zero queries)."""
    if role is Role.OUTPUT and cfg.zero_readout:
        return 0.0
    if role is Role.HIDDEN and cfg.zero_query and name.endswith("attn.q.weight"):
        return 0.0
    if role is Role.VECTOR:
        raise ValueError(f"{name}: role {role} has no init std (vectors start at 1)")
    return R.init_std(
        role, fan_in, width_mult(cfg), sigma=cfg.init_std, sigma_in=cfg.input_std,
        sigma_out=cfg.output_std,
    )  # fmt: skip


def residual_multiplier(cfg: GPTConfig) -> float:
    return R.residual_multiplier(depth(cfg))


def lr_multiplier(cfg: GPTConfig, role: Role) -> float:
    return R.lr_multiplier(role, width_mult(cfg), depth(cfg))


def wd_multiplier(cfg: GPTConfig, role: Role) -> float:
    return R.wd_multiplier(role, width_mult(cfg), depth(cfg))


def eps_multiplier(cfg: GPTConfig, role: Role, scale_eps: bool) -> float:
    return R.eps_multiplier(role, width_mult(cfg), scale_eps)


def input_multiplier(cfg: GPTConfig) -> float:
    return cfg.alpha_in


def readout_multiplier(cfg: GPTConfig) -> float:
    return R.readout_multiplier(cfg.alpha_out, width_mult(cfg))


def attention_scale(cfg: GPTConfig) -> float:
    return R.attention_scale(cfg.parametrization, cfg.alpha_attn, cfg.d_head, cfg.d_key)


def norm_eps(cfg: GPTConfig) -> float:
    """RMSNorm eps (`mup_rules.norm_eps`); `cfg` keeps the rule's signature."""
    return R.norm_eps()


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
    m = width_mult(model.cfg)
    named = ((name, p, role_of(name, p), m) for name, p in model.named_parameters())
    return R.grouped(named, depth(model.cfg), lr, weight_decay, eps, scale_eps)
