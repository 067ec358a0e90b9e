"""Training compute of a GPT (METHODS §7): 6·N per token plus attention 6·L·T·d per token.

N counts the parameters that do matrix multiplies per token: every matrix except the token and
position embeddings (a lookup costs nothing); an untied readout counts, since it is a full
d × vocab product.
"""

from __future__ import annotations

from sweep.model import GPTConfig


def non_embedding_params(cfg: GPTConfig) -> int:
    d, keys, values = cfg.d_model, cfg.n_heads * cfg.d_key, cfg.n_heads * cfg.d_value
    per_layer = 2 * d * (keys + values) + 2 * d * cfg.d_mlp + 2 * d  # qk, v proj, mlp, 2 gains
    return cfg.n_layer * per_layer + d + d * cfg.vocab_size  # + final gain + readout


def flops_per_token(cfg: GPTConfig) -> int:
    """Forward + backward FLOPs of one training token."""
    # q·k over the key size and the weighted sum over the value size: 6·L·T·d when both are d
    attention = 3 * cfg.n_layer * cfg.seq_len * cfg.n_heads * (cfg.d_key + cfg.d_value)
    return 6 * non_embedding_params(cfg) + attention


def training_flops(cfg: GPTConfig, tokens: int) -> int:
    return flops_per_token(cfg) * tokens
