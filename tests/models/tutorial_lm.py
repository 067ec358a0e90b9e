"""The PyTorch tutorial's language model (nn.TransformerEncoder), as a musweep factory.

`sqrt_embedding=True` is the tutorial's embedding × √d_model, which makes the residual stream
grow with width (µP keeps it at order 1); `feedforward`, when given, fixes the feed-forward
size (the tutorial's 2048) instead of 4 × width.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class TutorialLM(nn.Module):
    def __init__(self, width, depth, vocab_size, seq_len, sqrt_embedding, feedforward, heads):
        super().__init__()
        self.width, self.sqrt_embedding = width, sqrt_embedding
        self.embedding = nn.Embedding(vocab_size, width)
        self.position = nn.Embedding(seq_len, width)
        layer = nn.TransformerEncoderLayer(
            width, heads, feedforward or 4 * width, dropout=0.0, batch_first=True,
            norm_first=True,
        )  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embedding(idx) + self.position(torch.arange(idx.size(1), device=idx.device))
        if self.sqrt_embedding:
            x = x * math.sqrt(self.width)
        mask = nn.Transformer.generate_square_subsequent_mask(idx.size(1), device=idx.device)
        return self.lm_head(self.norm(self.encoder(x, mask=mask, is_causal=True)))


def build(width, depth, vocab_size, seq_len, sqrt_embedding=True, feedforward=None, heads=2):
    return TutorialLM(width, depth, vocab_size, seq_len, sqrt_embedding, feedforward, heads)
