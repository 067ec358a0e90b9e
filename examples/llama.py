"""A Llama-style language model written with `mup`'s parts, ready for musweep.

RMSNorm, rotary positions, SwiGLU, no biases, optional grouped-query attention (`kv_group`
query heads per key/value head). µP needs two things of the model itself: a `mup.MuReadout`
readout and attention logits scaled by 1/head_dim (times the tuned α_attn). Widths grow the
number of heads at a fixed head size. The factory takes CompleteP's `residual_multiplier`, so
HPs tuned at one depth carry to another.

    python -m sweep.run +ladder=gpt_small model=custom model.factory=examples/llama.py:build
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mup import MuReadout
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.size(-1),), self.weight, self.eps)


def rotary_tables(seq_len: int, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """(2, T, head_dim/2): cos and sin of every position's rotation angles."""
    freqs = theta ** (-torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.outer(torch.arange(seq_len).float(), freqs)
    return torch.stack((angles.cos(), angles.sin()))


def rotate(x: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    cos, sin = tables[:, : x.size(-2)]
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class Attention(nn.Module):
    def __init__(self, width: int, head_dim: int, kv_group: int, alpha_attn: float):
        super().__init__()
        self.heads, self.head_dim = width // head_dim, head_dim
        self.kv_heads = self.heads // kv_group
        self.q = nn.Linear(width, self.heads * head_dim, bias=False)
        self.k = nn.Linear(width, self.kv_heads * head_dim, bias=False)
        self.v = nn.Linear(width, self.kv_heads * head_dim, bias=False)
        self.o = nn.Linear(self.heads * head_dim, width, bias=False)
        self.scale = alpha_attn / head_dim  # µP: 1/d, not 1/sqrt(d)

    def forward(self, x: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(x).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(x).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = rotate(q, tables), rotate(k, tables)
        if self.kv_heads != self.heads:
            repeat = self.heads // self.kv_heads
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return self.o(y.transpose(1, 2).reshape(B, T, -1))


class SwiGLU(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.gate = nn.Linear(width, hidden, bias=False)
        self.up = nn.Linear(width, hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, width, head_dim, kv_group, hidden, alpha_attn, residual_multiplier):
        super().__init__()
        self.attn_norm, self.mlp_norm = RMSNorm(width), RMSNorm(width)
        self.attn = Attention(width, head_dim, kv_group, alpha_attn)
        self.mlp = SwiGLU(width, hidden)
        self.residual_multiplier = residual_multiplier

    def forward(self, x: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
        x = x + self.residual_multiplier * self.attn(self.attn_norm(x), tables)
        return x + self.residual_multiplier * self.mlp(self.mlp_norm(x))


class Llama(nn.Module):
    def __init__(self, width, depth, vocab_size, seq_len, head_dim, kv_group, hidden,
                 alpha_attn, alpha_out, residual_multiplier):  # fmt: skip
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.blocks = nn.ModuleList(
            Block(width, head_dim, kv_group, hidden, alpha_attn, residual_multiplier)
            for _ in range(depth)
        )
        self.norm = RMSNorm(width)
        self.head = MuReadout(width, vocab_size, bias=False, output_mult=alpha_out)
        self.register_buffer("tables", rotary_tables(seq_len, head_dim), persistent=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, self.tables)
        return self.head(self.norm(x))


def build(
    width: int,
    depth: int,
    vocab_size: int,
    seq_len: int,
    *,
    head_dim: int = 16,
    kv_group: int = 1,
    ffn_mult: float = 8 / 3,
    alpha_attn: float = 1.0,
    alpha_out: float = 1.0,
    residual_multiplier: float = 1.0,
) -> Llama:
    """The model `width` wide and `depth` blocks deep (musweep's factory signature)."""
    if width % head_dim or (width // head_dim) % kv_group:
        raise ValueError(f"width {width} must be a multiple of head_dim × kv_group")
    hidden = 8 * round(ffn_mult * width / 8)  # SwiGLU's hidden size, a multiple of 8
    return Llama(width, depth, vocab_size, seq_len, head_dim, kv_group, hidden,
                 alpha_attn, alpha_out, residual_multiplier)  # fmt: skip
