"""Shrink-pad-perturb (docs/methods.md §4; Ash & Adams, arXiv 1910.08475; arXiv 2411.07340):
θ_tgt = pad0(λ·θ_src) + σ·θ_init, a warm start that keeps part of the source and adds fresh µP
noise. The GPT pads through `sweep.grow.pad`, a custom model along its inferred width dimensions
(`sweep.grow.pad_inferred`). Pure, no I/O."""

from __future__ import annotations

import math

import torch

from sweep.core.models import ModelConfig, is_builtin
from sweep.grow.pad import grow_state
from sweep.grow.pad_inferred import grow_inferred
from sweep.grow.state import State, check_state, fresh_init


def shrink_pad_perturb(
    src_state: State,
    src_cfg: ModelConfig,
    tgt_cfg: ModelConfig,
    *,
    shrink: float,
    perturb: float,
    seed: int,
) -> State:
    """θ_tgt = grow_state(λ·θ_src) + σ·θ_init, θ_init = `fresh_init(tgt_cfg, seed)`.

    λ = `shrink` scales every source tensor (norm gains included, as Ash & Adams shrink all
    weights); σ·θ_init adds σ·1 to every norm gain. The result has the source tensors' dtypes and
    devices. With σ = 0 no init is drawn (the term is exactly zero).
    """
    if not 0.0 <= shrink <= 1.0:
        raise ValueError(f"warmstart.shrink must be in [0, 1], got {shrink}")
    if not 0.0 <= perturb < math.inf:
        raise ValueError(f"warmstart.perturb must be >= 0 and finite, got {perturb}")
    check_state(src_state, src_cfg)
    pad = grow_state if is_builtin(src_cfg) else grow_inferred  # each checks the growth
    with torch.no_grad():
        grown = pad({k: shrink * v for k, v in src_state.items()}, src_cfg, tgt_cfg)
        if perturb == 0.0:
            return grown
        init = fresh_init(tgt_cfg, seed)
        return {
            name: tensor + perturb * init[name].to(dtype=tensor.dtype, device=tensor.device)
            for name, tensor in grown.items()
        }
