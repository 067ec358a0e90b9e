"""Depth stacking, G_stack (Du et al., arXiv 2405.15319; docs/methods.md §5): a shallow trained
model's blocks repeated to make a deeper one. Not function-preserving. Pure, no I/O."""

from __future__ import annotations

from dataclasses import replace

from sweep.core.model import GPTConfig
from sweep.grow.state import State, check_state, move_blocks


def stack_layers(state: State, cfg: GPTConfig, times: int) -> tuple[State, GPTConfig]:
    """G_stack (Du et al., arXiv 2405.15319): the whole stack of blocks repeated `times` times,
    block j of the grown model a copy of source block j mod L. Not function-preserving: each copy
    adds its branches to the residual stream again. Weights are copied unchanged; under CompleteP
    the branch multiplier of the deeper model is `times`^-α smaller, which the copies keep."""
    check_state(state, cfg)
    if type(times) is not int or times < 1:
        raise ValueError(f"stack_layers: times must be a positive integer, got {times!r}")
    new_cfg = replace(cfg, n_layer=cfg.n_layer * times)
    copies = range(times)
    out = move_blocks(state, lambda i, _, t: [(c * cfg.n_layer + i, t.clone()) for c in copies])
    return out, new_cfg
