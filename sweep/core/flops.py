"""Training compute of a GPT (docs/methods.md §7): 6·N per token plus attention per token,
3·L·T·H·(d_key + d_value) (= 6·L·T·d when both head sizes times the heads make d).

N counts every parameter except the token and position embeddings (a lookup costs nothing): the
block matrices, the readout (a d × vocab product whether or not it is tied to the embedding), and
the RMSNorm gains (a per-coordinate multiply, negligible but counted).

A custom model (`sweep.core.custom`) counts N from its parameters the same way (every parameter
outside its embedding tables, a tied readout included) and its attention as 6·L·T·d, the
formula for attention d wide: its heads are the model's own.
"""

from __future__ import annotations

from sweep.core import custom
from sweep.core.model import GPTConfig
from sweep.core.models import ModelConfig, is_builtin


def non_embedding_params(cfg: GPTConfig) -> int:
    d, keys, values = cfg.d_model, cfg.n_heads * cfg.d_key, cfg.n_heads * cfg.d_value
    per_layer = 2 * d * (keys + values) + 2 * d * cfg.d_mlp + 2 * d  # qk, v proj, mlp, 2 gains
    return cfg.n_layer * per_layer + d + d * cfg.vocab_size  # + final gain + readout


def flops_per_token(cfg: ModelConfig) -> int:
    """Forward + backward FLOPs of one training token."""
    if not is_builtin(cfg):
        return 6 * custom.non_embedding_params(cfg) + 6 * cfg.n_layer * cfg.seq_len * cfg.d_model
    # q·k over the key size and the weighted sum over the value size: 6·L·T·d when both are d
    attention = 3 * cfg.n_layer * cfg.seq_len * cfg.n_heads * (cfg.d_key + cfg.d_value)
    return 6 * non_embedding_params(cfg) + attention


def training_flops(cfg: ModelConfig, tokens: int) -> int:
    return flops_per_token(cfg) * tokens
