"""Training compute of a GPT (METHODS §7): 6·N per token plus attention 6·L·T·d per token.

N counts the parameters that do matrix multiplies per token: every matrix except the token and
position embeddings (a lookup costs nothing); an untied readout counts, since it is a full
d × vocab product.
"""

from __future__ import annotations

from sweep.model import GPTConfig


def non_embedding_params(cfg: GPTConfig) -> int:
    d, d_attn = cfg.d_model, cfg.n_heads * cfg.head_size
    per_layer = 4 * d * d_attn + 2 * d * cfg.d_mlp + 2 * d  # q k v proj, mlp in/out, 2 gains
    return cfg.n_layer * per_layer + d + d * cfg.vocab_size  # + final gain + readout


def flops_per_token(cfg: GPTConfig) -> int:
    """Forward + backward FLOPs of one training token."""
    attention = 6 * cfg.n_layer * cfg.seq_len * cfg.n_heads * cfg.head_size
    return 6 * non_embedding_params(cfg) + attention


def training_flops(cfg: GPTConfig, tokens: int) -> int:
    return flops_per_token(cfg) * tokens
