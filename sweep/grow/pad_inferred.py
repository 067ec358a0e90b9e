"""pad0 for any model: a trained state in the leading block of a wider model's, along the width
dimensions `mup` infers (docs/methods.md §10). Pure, no I/O.

The built-in GPT grows through `sweep.grow.pad`, which knows its heads and rescales exactly; a
custom model grows here from its shapes alone:

- every dimension whose size differs between source and target is a width dimension, padded
  with zeros. One whose source size is c·w (w the source width, c ≥ 2 an integer) and which
  grows to c·W is c width-sized blocks (fused q/k/v, stacked gates), each padded in its own
  leading block, so a hidden unit lands at the same place in every tensor that indexes it;
- the readout's copied block is × m_tgt / m_src, undoing µP's 1/m on its output (1 in SP; not
  for a readout tied to the embedding, which the input side needs unchanged);
- the gains of normalisation layers (a module whose class name ends in "Norm") are
  × sqrt(w / W): zero coordinates lower the RMS of a padded vector by that much.

The grown model is not function-preserving in general (a LayerNorm's mean moves, the attention
scale is the model's own), which shrink-pad-perturb does not need.
"""

from __future__ import annotations

import math

import torch

from sweep.core import custom as C
from sweep.core.custom import CustomConfig
from sweep.grow.state import State, check_same, check_state, state_shapes

MUST_MATCH = (
    "factory", "vocab_size", "seq_len", "n_layer", "base_n_layer", "depth_alpha", "readout",
    "embeddings", "options", "parametrization",
)  # fmt: skip


def check_inferred_growth(src: CustomConfig, tgt: CustomConfig) -> None:
    """ValueError naming the field unless `tgt` is the same model as `src`, at least as wide."""
    check_same(src, tgt, MUST_MATCH)
    if tgt.d_model < src.d_model:
        raise ValueError(
            f"the target ({tgt.d_model}) must be at least as wide as the source ({src.d_model})"
        )


def pad_blocks(src: torch.Tensor, shape: tuple[int, ...], w_src: int, w_tgt: int) -> torch.Tensor:
    """`src` zero-padded to `shape`, each grown dimension of size c·w_src padded per block."""
    out = src
    for axis, (s, t) in enumerate(zip(src.shape, shape, strict=True)):
        if s == t:
            continue
        if t < s:
            raise ValueError(f"cannot grow a dimension of size {s} to {t}")
        blocks = s // w_src if s % w_src == 0 and t == (s // w_src) * w_tgt else 1
        split = out.reshape(*out.shape[:axis], blocks, s // blocks, *out.shape[axis + 1 :])
        padded = split.new_zeros(*split.shape[: axis + 1], t // blocks, *split.shape[axis + 2 :])
        padded.narrow(axis + 1, 0, s // blocks).copy_(split)
        out = padded.reshape(*out.shape[:axis], t, *out.shape[axis + 1 :])
    return out


def rescaled_names(cfg: CustomConfig) -> tuple[set[str], set[str]]:
    """(untied readout weights, normalisation gains) of the model, by state-dict name."""
    with torch.random.fork_rng(devices=[]):
        model = C.call_factory(C.shape_key(cfg), cfg.d_model)
    embedding = {id(p) for m in C.embedding_modules(model, cfg) for p in m.parameters()}
    readouts = {id(m.weight) for m in C.readout_modules(model, cfg)} - embedding
    readout_names, gain_names = set(), set()
    for prefix, module in model.named_modules():
        dot = f"{prefix}." if prefix else ""
        for name, p in module.named_parameters(recurse=False):
            if id(p) in readouts:
                readout_names.add(dot + name)
            if type(module).__name__.endswith("Norm") and name == "weight":
                gain_names.add(dot + name)
    return readout_names, gain_names


def grow_inferred(src_state: State, src_cfg: CustomConfig, tgt_cfg: CustomConfig) -> State:
    """pad0 of every source tensor to the target's shape, rescaled as the module docstring says.
    New tensors; `src_state` is untouched."""
    check_inferred_growth(src_cfg, tgt_cfg)
    check_state(src_state, src_cfg)
    shapes = state_shapes(tgt_cfg)
    readouts, gains = rescaled_names(src_cfg)
    mup = src_cfg.parametrization == "mup"
    out = {}
    with torch.no_grad():
        for name, tensor in src_state.items():
            grown = pad_blocks(tensor, shapes[name], src_cfg.d_model, tgt_cfg.d_model)
            if name in readouts and mup and tensor.ndim == 2:
                grown.mul_(shapes[name][1] / tensor.shape[1])
            elif name in gains and tensor.ndim == 1 and tensor.shape[0] != shapes[name][0]:
                grown.mul_(math.sqrt(tensor.shape[0] / shapes[name][0]))
            out[name] = grown
    return out
