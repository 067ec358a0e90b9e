"""Function-preserving growth operators (docs/methods.md §5; Gesmundo & Maile, arXiv 2308.06103).

Each operator is a pure function `(state, cfg, new sizes, *, init, seed) -> (state, cfg)` whose
output feeds the next one, so any sequence of them grows a trained model step by step. The grown
model computes the source's logits up to round-off: entries that would change the function are
zero, the copied block is rescaled wherever a forward multiplier of `sweep.core.parametrization`
changes, and every other new entry is "free": drawn from a fresh µP init of the grown config
(`init="random"`, seeded) or zero (`init="zero"`).

The width operators share one engine, `expand`: `pad.grow_state` (pad0 per head, plus the
rescalings of its table: q by the change of the attention scale, norm gains by sqrt(d/D), the
readout by the change of α_out/m) and the free entries on top. In PyTorch's (out, in) layout the
entries that must stay zero are

| operator      | must be zero                              | free                          |
|---------------|-------------------------------------------|-------------------------------|
| MLP p -> p̂    | new mlp.proj columns                      | new mlp.fc rows               |
| heads H -> Ĥ  | new attn.proj columns                     | the new heads' q, k, v rows   |
| value v -> v̂  | new attn.proj columns (per head)          | new v rows (per head)         |
| key k -> k̂    | the old heads' new q rows (per head)      | new k rows, new heads' q rows |
| hidden d -> D | new wte/wpe columns, new attn.proj and    | new q/k/v/fc/readout columns, |
|               | mlp.proj rows (writers to the residual)   | new norm gain entries         |

The key operator zeroes the new *query* coordinates and frees the key ones (the paper words it
the other way round; both keep q·k): µP initialises queries at zero, so a fresh init would leave
both new q and new k at zero, a saddle where neither ever gets a gradient. With new k free, the
new q coordinates do.

`add_layer` inserts an identity block (attn.proj = mlp.proj = 0). Under CompleteP the branch
multiplier (L_b/L)^α changes with L, so the other blocks' attn.proj and mlp.proj are rescaled by
its change. Depth stacking, which is not function-preserving, is `sweep.grow.stack`.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from sweep.core import parametrization as P
from sweep.core.model import GPTConfig
from sweep.grow.pad import grow_state, head_layout_of, pad_to
from sweep.grow.state import State, check_state, fresh_init, move_blocks, state_shapes

INITS = ("random", "zero")
NO_FREE_ENTRIES = ("wte.weight", "wpe.weight", "attn.proj.weight", "mlp.proj.weight")
BRANCH_OUTPUTS = ("attn.proj.weight", "mlp.proj.weight")


def _check_init(init: str) -> None:
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")


def _free(
    name: str, old: torch.Size, shape: torch.Size, cfg: GPTConfig, new_cfg: GPTConfig
) -> torch.Tensor:
    """Boolean mask of the grown tensor's entries that may take any value (module table)."""
    if name.endswith(NO_FREE_ENTRIES):
        return torch.zeros(shape, dtype=torch.bool)
    old_block = torch.ones(old, dtype=torch.bool)
    free = ~pad_to(old_block, shape, head_layout_of(name, cfg, new_cfg))
    if name.endswith("attn.q.weight"):  # the old heads' new query coordinates stay zero
        per_head = free.view(new_cfg.n_heads, new_cfg.d_key, shape[1])
        per_head[: cfg.n_heads, cfg.d_key :] = False
    return free


def expand(state: State, cfg: GPTConfig, new_cfg: GPTConfig, *, init: str, seed: int) -> State:
    """The source grown to `new_cfg` in any width-like dimensions at once, computing the same
    function; the operators below only choose `new_cfg`."""
    _check_init(init)
    grown = grow_state(state, cfg, new_cfg)  # checks both configs and the state
    if init == "zero":
        return grown
    fresh = fresh_init(new_cfg, seed)
    out = {}
    for name, t in grown.items():
        free = _free(name, state[name].shape, t.shape, cfg, new_cfg).to(t.device)
        out[name] = torch.where(free, fresh[name].to(t), t)
    return out


INNER = {
    "mlp_width": "MLP p -> p̂",
    "head_count": "heads H -> Ĥ (new heads appended after the old ones)",
    "value_size": "per-head value v -> v̂",
    "key_size": "per-head key/query k -> k̂ (old q × the change of the attention scale)",
}


def grow_inner(
    state: State, cfg: GPTConfig, *, init: str = "random", seed: int = 0, **sizes: int
) -> tuple[State, GPTConfig]:
    """The blocks' inner dimensions grown to `sizes` (any of `INNER`'s: the paper's MLP, heads,
    value and key operators, one at a time or together), the residual width kept."""
    if unknown := set(sizes) - set(INNER):
        raise ValueError(
            f"grow_inner grows {', '.join(INNER)}; got {', '.join(sorted(unknown))} "
            "(the hidden size is grow_hidden's)"
        )
    new_cfg = replace(cfg, **sizes)
    return expand(state, cfg, new_cfg, init=init, seed=seed), new_cfg


def grow_hidden(
    state: State, cfg: GPTConfig, d_model: int, *, init: str = "random", seed: int = 0
) -> tuple[State, GPTConfig]:
    """Hidden size d -> `d_model`, every other dimension pinned at its current value (so the
    grown model is usually off the µP ladder) and the µP base kept."""
    new_cfg = replace(
        cfg,
        d_model=d_model,
        base_d_model=cfg.base_width,
        mlp_width=cfg.d_mlp,
        head_count=cfg.n_heads,
        key_size=cfg.d_key,
        value_size=cfg.d_value,
    )
    return expand(state, cfg, new_cfg, init=init, seed=seed), new_cfg


def add_layer(
    state: State, cfg: GPTConfig, position: int, *, init: str = "random", seed: int = 0
) -> tuple[State, GPTConfig]:
    """An identity block inserted before block `position` (0..n_layer; n_layer appends).

    Its attn.proj and mlp.proj are zero; its other tensors are free. The other blocks' branch
    outputs are rescaled by the change of `parametrization.residual_multiplier` (1 unless
    CompleteP's `base_n_layer` is set).
    """
    _check_init(init)
    check_state(state, cfg)
    if not 0 <= position <= cfg.n_layer:
        raise ValueError(f"add_layer: position must be in 0..{cfg.n_layer}, got {position}")
    new_cfg = replace(cfg, n_layer=cfg.n_layer + 1)
    rescale = P.residual_multiplier(cfg) / P.residual_multiplier(new_cfg)
    like = state["wte.weight"]
    fresh = fresh_init(new_cfg, seed) if init == "random" else None
    out = {}
    for name, shape in state_shapes(new_cfg).items():
        if name.startswith(f"blocks.{position}."):
            zero = fresh is None or name.endswith(BRANCH_OUTPUTS)
            out[name] = like.new_zeros(shape) if zero else fresh[name].to(like)

    def shifted(index: int, rest: str, t: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        scaled = rest in BRANCH_OUTPUTS and rescale != 1.0
        return [(index + (index >= position), t * rescale if scaled else t.clone())]

    return out | move_blocks(state, shifted), new_cfg
