"""A small decoder-only GPT whose width-dependent scales all come from `sweep.core.parametrization`.

Pre-norm RMSNorm blocks, no biases, learned absolute positions (RoPE would break the key/query
growth operators), causal attention through `scaled_dot_product_attention` with an explicit scale,
GELU MLP, untied readout by default. The module holds no µP logic of its own: it asks
`parametrization` for its forward multipliers (embedding, readout, attention logits, CompleteP's
residual branches), its RMSNorm eps and its initialisation, so the rules stay auditable in one
file.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from sweep.core import parametrization as P

HEAD_SCALINGS = ("count", "size")


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 256  # byte-level by default; a token file sets its own
    seq_len: int = 128  # context length: rows of the position embedding
    n_layer: int = 2
    d_model: int = 64  # the width this model is built at
    d_head: int = 16  # head size at the base width
    mlp_ratio: float = 4.0  # MLP width = mlp_ratio * d_model
    head_scaling: str = "count"  # width grows the number of heads ("count") or the head size
    tie_embeddings: bool = False  # readout reuses the token embedding matrix
    parametrization: str = "mup"  # "mup" or "sp" (standard, PyTorch-style) for contrast
    base_d_model: int | None = None  # µP base width (the ladder's smallest); None: d_model
    # Initialisation (docs/methods.md §1): normal, std by role (`parametrization.init_std`).
    init_std: float = 1.0  # σ of hidden matrices: std = σ / sqrt(fan_in)
    input_std: float = 1.0  # σ_in: the std of token and position embeddings
    output_std: float = 1.0  # σ_out of the readout: std = σ_out / sqrt(d_base) (SP: / sqrt(d))
    zero_query: bool = True  # µP recommends zero query weights (uniform attention at init)
    zero_readout: bool = False  # zero readout: logits start at exactly 0
    # Forward multipliers, tuned on the proxy and carried unchanged to every width.
    alpha_in: float = 1.0  # embedding output multiplier
    alpha_out: float = 1.0  # readout multiplier (µP divides it by the width multiplier)
    alpha_attn: float = 1.0  # attention logit multiplier
    # Explicit dimensions off the µP ladder, for models grown by `sweep.grow.function_preserving`;
    # None: the ladder's value (d_mlp = mlp_ratio·d_model, n_heads and head size from head_scaling).
    mlp_width: int | None = None  # MLP hidden width
    head_count: int | None = None  # number of attention heads
    key_size: int | None = None  # per-head size of queries and keys
    value_size: int | None = None  # per-head size of values (attn.proj reads heads × this)
    # CompleteP depth parametrization (docs/methods.md §1): residual branches × (L_base/L)^α.
    base_n_layer: int | None = None  # depth of the tuned proxy; None: n_layer (multiplier 1)
    depth_alpha: float = 1.0  # α in [0.5, 1]; CompleteP's choice is 1

    def __post_init__(self) -> None:
        base = self.base_width
        for name in ("vocab_size", "seq_len", "n_layer", "d_model", "d_head"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"model.{name} must be a positive integer, got {getattr(self, name)}"
                )
        for name in ("mlp_width", "head_count", "key_size", "value_size", "base_n_layer"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value <= 0):
                raise ValueError(f"model.{name} must be a positive integer or None, got {value!r}")
        if not 0.5 <= self.depth_alpha <= 1.0:
            raise ValueError(f"model.depth_alpha must be in [0.5, 1], got {self.depth_alpha}")
        if self.parametrization not in P.PARAMETRIZATIONS:
            raise ValueError(
                f"model.parametrization must be one of {P.PARAMETRIZATIONS}, "
                f"got {self.parametrization!r}"
            )
        if self.head_scaling not in HEAD_SCALINGS:
            raise ValueError(
                f"model.head_scaling must be one of {HEAD_SCALINGS}, got {self.head_scaling!r}"
            )
        if base <= 0 or self.d_model < base:
            raise ValueError(
                f"model.d_model ({self.d_model}) must be at least model.base_d_model ({base}): "
                "the µP base is the smallest width of the ladder"
            )
        if base % self.d_head:
            raise ValueError(
                f"model.base_d_model ({base}) must be divisible by model.d_head ({self.d_head})"
            )
        divisor = self.d_head if self.head_scaling == "count" else base // self.d_head
        derived = (  # does a dimension still follow from d_model through this divisor?
            self.head_count is None
            if self.head_scaling == "count"
            else self.key_size is None or self.value_size is None
        )
        if derived and self.d_model % divisor:
            what = "model.d_head" if self.head_scaling == "count" else "the number of heads"
            raise ValueError(
                f"model.d_model ({self.d_model}) must be divisible by {what} ({divisor}) "
                f"with head_scaling={self.head_scaling!r}"
            )
        if self.mlp_width is None and (self.mlp_ratio <= 0 or (self.mlp_ratio * self.d_model) % 1):
            raise ValueError(
                f"model.mlp_ratio ({self.mlp_ratio}) times d_model ({self.d_model}) "
                "must be a positive integer"
            )
        for name in ("init_std", "input_std", "output_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"model.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def base_width(self) -> int:
        return self.d_model if self.base_d_model is None else self.base_d_model

    @property
    def head_size(self) -> int:
        """The ladder's head size at this width (the default of `d_key` and `d_value`)."""
        if self.head_scaling == "count":
            return self.d_head
        return self.d_model // (self.base_width // self.d_head)

    @property
    def n_heads(self) -> int:
        if self.head_count is not None:
            return self.head_count
        if self.head_scaling == "count":
            return self.d_model // self.d_head
        return self.base_width // self.d_head

    @property
    def d_key(self) -> int:
        return self.head_size if self.key_size is None else self.key_size

    @property
    def d_value(self) -> int:
        return self.head_size if self.value_size is None else self.value_size

    @property
    def d_mlp(self) -> int:
        return int(self.mlp_ratio * self.d_model) if self.mlp_width is None else self.mlp_width

    @property
    def depth_base(self) -> int:
        return self.n_layer if self.base_n_layer is None else self.base_n_layer

    def at_width(self, d_model: int) -> GPTConfig:
        """The ladder's model at another width, keeping the µP base and the depth settings.

        The explicit dimensions (`mlp_width`, `head_count`, `key_size`, `value_size`) are
        dropped: they pin one grown model's shape, which does not scale with the ladder.
        """
        return replace(
            self,
            d_model=d_model,
            base_d_model=self.base_width,
            mlp_width=None,
            head_count=None,
            key_size=None,
            value_size=None,
        )

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


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
