"""Width transfer as sampling under the row-column mean-field ansatz (docs/methods.md §6;
arXiv 2408.08681).

Pure functions on state dicts and configs, no I/O. Each width-like dimension is a set of units:
residual coordinates (d → D, one map shared by every layer, since the stream is one vector), MLP
units (per layer), attention heads and the coordinates within each head (per layer; with
`head_scaling="count"` only the heads grow, with "size" only the coordinates). For each new unit j
`resample_width` picks a source unit i_j and builds every target tensor by indexing:

| tensor            | rows      | columns   | × factor                                          |
|-------------------|-----------|-----------|---------------------------------------------------|
| wte, wpe          | —         | residual  | embedding ratio (=1)                              |
| norm_attn/mlp     | residual  | —         | 1                                                 |
| q                 | attention | residual  | query ratio / (S/s) / (D/d)                       |
| k, v              | attention | residual  | 1 / (D/d)                                         |
| attn.proj         | residual  | attention | 1 / (D_attn/d_attn)                               |
| mlp.fc            | MLP       | residual  | 1 / (D/d)                                         |
| mlp.proj          | residual  | MLP       | 1 / (P/p)                                         |
| readout (untied)  | —         | residual  | readout ratio / (D/d)                             |
| norm_f gain       | residual  | —         | tied: readout ratio / (embedding ratio · D/d)     |

Copying incoming weights copies a unit; dividing every sum over a grown input dimension by its
width ratio N/n splits the copies' outgoing contribution. The query carries two more factors: q·k
sums over the head's S coordinates (S/s copies of each), and the ratio of the µP/SP logit scales;
the readout carries the ratio of its multiplier α_out/m. These ratios are `growth.growth_scales`'s.
With tied embeddings the readout is `wte`, which the input side needs as it is, so the readout's
factor goes on the final norm gain (it feeds only the readout), as in `sweep.grow.pad`.

`mode="stratified"` uses each source unit exactly N/n times (unit j copies j mod n, so the source
is the leading block): a residual vector tiled this way keeps its mean square, so RMSNorm
(whose eps is the same at every width) and every sum are preserved and the target computes the
source's logits up to round-off (HyperCloning's tiling). `mode="iid"` draws i_j uniformly and
independently and splits by the same N/n (the expected number of copies): the mean-field
approximation, whose error shrinks as sqrt(n/N) (relative logit error about 1.0 at N/n = 4, 0.3
at 64 in tests/test_resample.py). Copies receive identical gradients and stay copies (the model
keeps the source's effective width) unless `noise` breaks the symmetry.
A dimension that does not grow keeps its units.
"""

from __future__ import annotations

import math

import torch

from sweep.core import parametrization as P
from sweep.core.model import GPTConfig
from sweep.grow.choices import Sampling
from sweep.grow.pad import check_growth, growth_scales
from sweep.grow.state import State, check_state


def unit_map(n_src: int, n_tgt: int, mode: str, gen: torch.Generator, what: str) -> torch.Tensor:
    """Source unit (in [0, n_src)) of each of n_tgt target units; the identity if none are new."""
    if n_src == n_tgt:
        return torch.arange(n_src)
    if mode == Sampling.iid:
        return torch.randint(n_src, (n_tgt,), generator=gen)
    if n_tgt % n_src:
        raise ValueError(
            f"stratified resampling needs an integer width ratio: {what} grows {n_src} -> "
            f"{n_tgt} (ratio {n_tgt / n_src:g}); use mode='iid' or a target width that is a "
            "multiple"
        )
    return torch.arange(n_tgt) % n_src


def attention_map(
    src_cfg: GPTConfig, tgt_cfg: GPTConfig, mode: str, gen: torch.Generator
) -> torch.Tensor:
    """Source row of each target q/k/v row (head-major): whole heads are copied, and within a
    target head its coordinates are drawn from its source head's (a separate draw per head)."""
    h, H, s, S = src_cfg.n_heads, tgt_cfg.n_heads, src_cfg.head_size, tgt_cfg.head_size
    heads = unit_map(h, H, mode, gen, "the number of heads")
    coords = torch.stack([unit_map(s, S, mode, gen, "the head size") for _ in range(H)])
    return (heads[:, None] * s + coords).flatten()


def _factors(src_cfg: GPTConfig, tgt_cfg: GPTConfig) -> dict[str, float]:
    """Multiplier corrections (beyond the fan-in splits) that keep the logits unchanged."""
    scales = growth_scales(src_cfg, tgt_cfg)
    res = tgt_cfg.d_model / src_cfg.d_model
    readout = scales["readout"] / res  # the readout also sums over the grown residual
    return {
        "embedding": scales["embedding"],
        "query": scales["query"] / (tgt_cfg.head_size / src_cfg.head_size),
        "readout": readout,
        "final_gain": readout / scales["embedding"] if src_cfg.tie_embeddings else 1.0,
    }


def _take(t: torch.Tensor, rows: torch.Tensor | None, cols: torch.Tensor | None) -> torch.Tensor:
    if rows is not None:
        t = t.index_select(0, rows.to(t.device))
    if cols is not None:
        t = t.index_select(1, cols.to(t.device))
    return t


def resample_width(
    src_state: State,
    src_cfg: GPTConfig,
    tgt_cfg: GPTConfig,
    *,
    mode: str,
    noise: float = 0.0,
    seed: int,
) -> State:
    """The source's weights resampled to the target's widths (see the module docstring).

    `noise` = σ ≥ 0 adds σ times zero-mean normal noise with the target's µP init std of each
    matrix (`parametrization.init_std`; the same units as `warmstart.perturb`) to break the
    copies' symmetry. Norm gains (deterministic init 1) get none, nor do tensors whose init is
    zero (a zero-init query or readout). Unit maps and noise come from one `torch.Generator`
    seeded with `seed`: deterministic, and the global RNG is untouched. New tensors with the
    source's dtypes and devices; the source is not modified.
    """
    if mode not in set(Sampling):
        raise ValueError(f"resample mode must be one of {', '.join(Sampling)}, got {mode!r}")
    if not 0.0 <= noise < math.inf:
        raise ValueError(f"resample noise must be >= 0 and finite, got {noise}")
    check_growth(src_cfg, tgt_cfg)
    check_state(src_state, src_cfg)
    gen = torch.Generator().manual_seed(seed)
    d, D = src_cfg.d_model, tgt_cfg.d_model
    res = unit_map(d, D, mode, gen, "model.d_model")
    f = _factors(src_cfg, tgt_cfg)
    split_res, split_mlp = d / D, src_cfg.d_mlp / tgt_cfg.d_mlp
    split_attn = src_cfg.n_heads * src_cfg.head_size / (tgt_cfg.n_heads * tgt_cfg.head_size)
    # name -> (rows, columns, factor)
    plan: dict[str, tuple[torch.Tensor | None, torch.Tensor | None, float]] = {
        "wte.weight": (None, res, f["embedding"]),
        "wpe.weight": (None, res, f["embedding"]),
        "norm_f.weight": (res, None, f["final_gain"]),
    }
    if not src_cfg.tie_embeddings:
        plan["readout.weight"] = (None, res, f["readout"])
    for layer in range(src_cfg.n_layer):
        attn = attention_map(src_cfg, tgt_cfg, mode, gen)
        mlp = unit_map(src_cfg.d_mlp, tgt_cfg.d_mlp, mode, gen, "the MLP width")
        b = f"blocks.{layer}."
        plan |= {
            b + "norm_attn.weight": (res, None, 1.0),
            b + "attn.q.weight": (attn, res, f["query"] * split_res),
            b + "attn.k.weight": (attn, res, split_res),
            b + "attn.v.weight": (attn, res, split_res),
            b + "attn.proj.weight": (res, attn, split_attn),
            b + "norm_mlp.weight": (res, None, 1.0),
            b + "mlp.fc.weight": (mlp, res, split_res),
            b + "mlp.proj.weight": (res, mlp, split_mlp),
        }
    out = {}
    with torch.no_grad():
        for name, (rows, cols, factor) in plan.items():
            t = _take(src_state[name], rows, cols)
            out[name] = t * factor if factor != 1.0 else t
        if noise > 0.0:
            _add_init_noise(out, tgt_cfg, noise, gen)
    return out


def _add_init_noise(state: State, cfg: GPTConfig, noise: float, gen: torch.Generator) -> None:
    """`noise` × the µP init std of each matrix, drawn from `gen` in the state's order, added in
    place; none where the init is zero."""
    for name, t in state.items():
        if t.ndim != 2:
            continue
        std = P.init_std(cfg, name, P.role_of(name, t), fan_in=t.shape[1])
        if std > 0.0:
            draw = torch.randn(t.shape, generator=gen)
            t.add_(draw.to(dtype=t.dtype, device=t.device), alpha=noise * std)
