"""A small decoder-only GPT whose width-dependent scales all come from `sweep.core.parametrization`.

Pre-norm RMSNorm blocks, no biases, learned absolute positions (RoPE would break the key/query
growth operators), causal attention through `scaled_dot_product_attention` with an explicit scale,
GELU MLP, untied readout by default. The module holds no µP logic of its own: it asks
`parametrization` for its forward multipliers (embedding, readout, attention logits, CompleteP's
residual branches), its RMSNorm eps and its initialisation, so the rules stay auditable in one
file.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sweep.core import parametrization as P
from sweep.core.configs import GPTConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.size(-1),), self.weight, eps=self.eps)


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_heads, self.d_key, self.d_value = cfg.n_heads, cfg.d_key, cfg.d_value
        self.q = nn.Linear(cfg.d_model, self.n_heads * self.d_key, bias=False)
        self.k = nn.Linear(cfg.d_model, self.n_heads * self.d_key, bias=False)
        self.v = nn.Linear(cfg.d_model, self.n_heads * self.d_value, bias=False)
        self.proj = nn.Linear(self.n_heads * self.d_value, cfg.d_model, bias=False)
        self.scale = P.attention_scale(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = (
            lin(x).view(B, T, self.n_heads, size).transpose(1, 2)  # (B, nh, T, size)
            for lin, size in ((self.q, self.d_key), (self.k, self.d_key), (self.v, self.d_value))
        )
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return self.proj(y.transpose(1, 2).reshape(B, T, -1))  # (B, T, d)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.d_mlp, bias=False)
        self.proj = nn.Linear(cfg.d_mlp, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        eps = P.norm_eps(cfg)
        self.norm_attn = RMSNorm(cfg.d_model, eps)
        self.attn = Attention(cfg)
        self.norm_mlp = RMSNorm(cfg.d_model, eps)
        self.mlp = MLP(cfg)
        self.residual_mult = P.residual_multiplier(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.residual_mult * self.attn(self.norm_attn(x))
        return x + self.residual_mult * self.mlp(self.norm_mlp(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm_f = RMSNorm(cfg.d_model, P.norm_eps(cfg))
        self.readout = (
            None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        )
        self.input_mult = P.input_multiplier(cfg)
        self.readout_mult = P.readout_multiplier(cfg)
        P.init_parameters(self)

    @property
    def readout_weight(self) -> torch.Tensor:
        return self.wte.weight if self.readout is None else self.readout.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids (B, T)."""
        T = idx.size(1)
        if self.cfg.seq_len < T:
            raise ValueError(f"sequence of length {T} exceeds model.seq_len ({self.cfg.seq_len})")
        pos = torch.arange(T, device=idx.device)
        x = self.input_mult * (self.wte(idx) + self.wpe(pos))  # (B, T, d)
        for block in self.blocks:
            x = block(x)
        return F.linear(self.readout_mult * self.norm_f(x), self.readout_weight)


def lm_loss(model: nn.Module, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy; a free function so a `torch.compile`d model works too."""
    logits = model(idx)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
