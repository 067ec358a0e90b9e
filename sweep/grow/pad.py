"""pad0: a trained model's weights in the leading block of a wider model's (docs/methods.md §4, §5).

Pure functions on state dicts and configs, no I/O. `grow_state` zero-pads every tensor of the
source into the leading block of the target's shape and applies the rescalings that make the
grown model compute the source's function:

| tensor                     | new entries | old entries ×                                        |
|----------------------------|-------------|------------------------------------------------------|
| wte, wpe                   | 0           | input_multiplier(src) / input_multiplier(tgt)  (=1)  |
| q (rows per head)          | 0           | attention_scale(src) / attention_scale(tgt)          |
| k, v (rows per head)       | 0           | 1                                                    |
| attn.proj (cols per head)  | 0           | 1                                                    |
| mlp.fc, mlp.proj           | 0           | 1                                                    |
| RMSNorm gains              | 0           | sqrt(d / D)  (zero coordinates lower the RMS, §5.5)  |
| readout (untied)           | 0           | readout_multiplier(src) / readout_multiplier(tgt)    |
| norm_f gain (tied readout) | 0           | sqrt(d / D) · readout ratio / input ratio            |

With tied embeddings the readout matrix *is* `wte`, which the input side needs unchanged, so the
readout's rescaling goes on the final norm gain instead (norm_f feeds only the readout).

Everything that writes to the residual stream is zero beyond coordinate d (wte/wpe columns,
attn.proj and mlp.proj rows: "new columns" in (in, out) notation), and every new hidden
unit, head or head coordinate reads or writes only zeros, so the grown residual stream is the
source's padded with zeros. Padding divides each RMSNorm's mean square by D/d, which the gain ×
sqrt(d/D) undoes; the norm's eps is negligible (`parametrization.norm_eps`), so preservation holds
to round-off.

Multipliers come from `sweep.core.parametrization`; nothing here re-derives a µP rule.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from sweep.core import parametrization as P
from sweep.core.model import GPTConfig
from sweep.grow.state import check_same, check_state, state_shapes

MUST_MATCH = (
    "n_layer",
    "vocab_size",
    "seq_len",
    "head_scaling",
    "d_head",
    "tie_embeddings",
    "base_n_layer",
    "depth_alpha",
)
NORM_SUFFIXES = ("norm_attn.weight", "norm_mlp.weight")
QKV_SUFFIXES = ("attn.q.weight", "attn.k.weight", "attn.v.weight")


class HeadLayout(NamedTuple):
    """Dimension `axis` of a tensor is head-major: (heads, head_size) flattened."""

    axis: int
    src_heads: int
    tgt_heads: int


def pad_to(
    src: torch.Tensor, shape, head_layout: HeadLayout | tuple[int, int, int] | None = None
) -> torch.Tensor:
    """A new zero tensor of `shape` (src's dtype/device) holding `src` in its leading block.

    With `head_layout = (axis, src_heads, tgt_heads)` that axis is viewed as (heads, head_size)
    and padded per head: head j of the source lands in the leading rows of head j of the target.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != src.ndim:
        raise ValueError(
            f"pad_to: target shape {shape} has a different rank than {tuple(src.shape)}"
        )
    if any(t < s for s, t in zip(src.shape, shape, strict=True)):
        raise ValueError(
            f"pad_to: target shape {shape} is smaller than the source {tuple(src.shape)} "
            "in some dimension"
        )
    if head_layout is not None:
        axis, src_heads, tgt_heads = head_layout
        axis %= src.ndim
        if src.shape[axis] % src_heads or shape[axis] % tgt_heads:
            raise ValueError(
                f"pad_to: axis {axis} ({src.shape[axis]} -> {shape[axis]}) is not divisible by "
                f"the number of heads ({src_heads} -> {tgt_heads})"
            )
        src_split = (src_heads, src.shape[axis] // src_heads)
        tgt_split = (tgt_heads, shape[axis] // tgt_heads)
        split_src = src.reshape(*src.shape[:axis], *src_split, *src.shape[axis + 1 :])
        return pad_to(split_src, (*shape[:axis], *tgt_split, *shape[axis + 1 :])).reshape(shape)
    with torch.no_grad():
        out = src.new_zeros(shape)
        out[tuple(slice(0, s) for s in src.shape)] = src
    return out


def check_growth(src_cfg: GPTConfig, tgt_cfg: GPTConfig) -> None:
    """ValueError naming the field unless tgt_cfg is a (non-strict) widening of src_cfg."""
    check_same(src_cfg, tgt_cfg, MUST_MATCH)
    ladder_heads = "d_model" if src_cfg.head_scaling == "count" else "base_d_model"
    dims = (  # (field that sets it in the target, source, target)
        ("d_model", src_cfg.d_model, tgt_cfg.d_model),
        (_field(tgt_cfg, "mlp_width", "mlp_ratio"), src_cfg.d_mlp, tgt_cfg.d_mlp),
        (_field(tgt_cfg, "head_count", ladder_heads), src_cfg.n_heads, tgt_cfg.n_heads),
        (_field(tgt_cfg, "key_size", "base_d_model"), src_cfg.d_key, tgt_cfg.d_key),
        (_field(tgt_cfg, "value_size", "base_d_model"), src_cfg.d_value, tgt_cfg.d_value),
    )
    for field, a, b in dims:
        if b < a:
            raise ValueError(
                f"model.{field}: the target must be at least as wide as the source in every "
                f"width-like dimension, got {a} -> {b} "
                f"(d_model {src_cfg.d_model} -> {tgt_cfg.d_model}, d_mlp {src_cfg.d_mlp} -> "
                f"{tgt_cfg.d_mlp}, heads {src_cfg.n_heads} -> {tgt_cfg.n_heads}, key size "
                f"{src_cfg.d_key} -> {tgt_cfg.d_key}, value size {src_cfg.d_value} -> "
                f"{tgt_cfg.d_value})"
            )


def _field(cfg: GPTConfig, override: str, ladder: str) -> str:
    """The config field that sets a dimension: its explicit override if set, else the ladder's."""
    return override if getattr(cfg, override) is not None else ladder


def _ratio(src: float, tgt: float, field: str) -> float:
    """src / tgt, the factor that keeps `multiplier × weight` fixed."""
    if src == tgt:
        return 1.0
    if tgt == 0:
        raise ValueError(f"model.{field}: the target's multiplier is 0, the source's {src}")
    return src / tgt


def growth_scales(src_cfg: GPTConfig, tgt_cfg: GPTConfig) -> dict[str, float]:
    """The factor on the copied (old) block of each kind of tensor; see the module table."""
    embed = _ratio(P.input_multiplier(src_cfg), P.input_multiplier(tgt_cfg), "alpha_in")
    readout = _ratio(P.readout_multiplier(src_cfg), P.readout_multiplier(tgt_cfg), "alpha_out")
    query = _ratio(P.attention_scale(src_cfg), P.attention_scale(tgt_cfg), "alpha_attn")
    gain = math.sqrt(src_cfg.d_model / tgt_cfg.d_model)
    tied = src_cfg.tie_embeddings
    return {
        "embedding": embed,
        "query": query,
        "gain": gain,
        "readout": readout,
        # the tied readout already carries wte's `embed` factor; the rest goes on norm_f
        "final_gain": gain * readout / embed if tied else gain,
    }


def _kind(name: str) -> str | None:
    if name in ("wte.weight", "wpe.weight"):
        return "embedding"
    if name == "readout.weight":
        return "readout"
    if name == "norm_f.weight":
        return "final_gain"
    if name.endswith(NORM_SUFFIXES):
        return "gain"
    if name.endswith("attn.q.weight"):
        return "query"
    return None


def head_layout_of(name: str, src_cfg: GPTConfig, tgt_cfg: GPTConfig) -> HeadLayout | None:
    if name.endswith(QKV_SUFFIXES):
        return HeadLayout(0, src_cfg.n_heads, tgt_cfg.n_heads)
    if name.endswith("attn.proj.weight"):
        return HeadLayout(1, src_cfg.n_heads, tgt_cfg.n_heads)
    return None


def grow_state(
    src_state: dict[str, torch.Tensor], src_cfg: GPTConfig, tgt_cfg: GPTConfig
) -> dict[str, torch.Tensor]:
    """pad0 of every source tensor to the target's shape, rescaled so that the grown model
    computes the source's function (see the module docstring). New tensors; src is untouched."""
    check_growth(src_cfg, tgt_cfg)
    check_state(src_state, src_cfg)
    shapes = state_shapes(tgt_cfg)
    scales = growth_scales(src_cfg, tgt_cfg)
    out = {}
    with torch.no_grad():
        for name, tensor in src_state.items():
            grown = pad_to(tensor, shapes[name], head_layout_of(name, src_cfg, tgt_cfg))
            kind = _kind(name)
            if kind is not None and scales[kind] != 1.0:
                grown.mul_(scales[kind])
            out[name] = grown
    return out
