"""Rules that carry tuned values along the axes beside width (docs/methods.md §11): training
length, batch size and AdamW weight decay. Pure functions, no I/O.

- Training length: the LR optimum falls as a power of the tokens trained, η* ∝ D^(−β)
  (Bjorck et al. 2024, arXiv 2409.19913); β is fitted on the proxy's own rungs (`fit_power_law`)
  or given.
- Batch size: for Adam, η* ∝ B^κ with κ = ½ (the square-root rule) or fitted.
- Weight decay: AdamW's timescale τ = B / (η·λ·D), the fraction of the run one weight-decay
  time constant 1/(η·λ) spans, is what transfers ("Power Lines", arXiv 2505.13738); holding it
  fixed gives λ at any (η, B, D).

Batch B and tokens D are both counted in tokens (sequences would do as well: τ is a ratio).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SQRT_RULE = 0.5  # κ of Adam's square-root batch rule


@dataclass(frozen=True)
class PowerLaw:
    """log2 y = log2_intercept − exponent · log2 x, fitted by least squares in log-log."""

    exponent: float  # β for LR against tokens (positive: the optimum falls)
    log2_intercept: float
    stderr: float  # of the exponent; inf with two points, NaN with fewer
    points: int

    def log2_at(self, x: float) -> float:
        return self.log2_intercept - self.exponent * math.log2(x)


def fit_power_law(xs: Sequence[float], log2_ys: Sequence[float]) -> PowerLaw:
    """The power law through (x, log2 y) points (an optimum's log2 LR at each rung's tokens);
    non-finite points are left out. ValueError below two distinct x."""
    pairs = [(math.log2(x), y) for x, y in zip(xs, log2_ys, strict=True) if math.isfinite(y)]
    if len({u for u, _ in pairs}) < 2:
        raise ValueError(f"a power law needs two distinct rungs with an optimum, got {pairs}")
    u = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    slope, intercept = np.polyfit(u, y, 1)
    n = len(pairs)
    if n > 2:
        residual = y - (intercept + slope * u)
        stderr = math.sqrt(
            float(residual @ residual) / (n - 2) / float(((u - u.mean()) ** 2).sum())
        )
    else:
        stderr = math.inf
    return PowerLaw(float(-slope), float(intercept), stderr, n)


def horizon_lr(lr: float, tokens_from: float, tokens_to: float, beta: float) -> float:
    """η at `tokens_to` given η at `tokens_from`: η · (D_to / D_from)^(−β)."""
    _positive(lr=lr, tokens_from=tokens_from, tokens_to=tokens_to)
    return lr * (tokens_to / tokens_from) ** (-beta)


def batch_lr(lr: float, batch_from: float, batch_to: float, kappa: float = SQRT_RULE) -> float:
    """η at batch `batch_to` given η at `batch_from`: η · (B_to / B_from)^κ."""
    _positive(lr=lr, batch_from=batch_from, batch_to=batch_to)
    return lr * (batch_to / batch_from) ** kappa


def adamw_timescale(batch: float, lr: float, weight_decay: float, tokens: float) -> float:
    """τ = B / (η·λ·D); +inf without weight decay (its time constant never ends)."""
    _positive(batch=batch, lr=lr, tokens=tokens)
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    return math.inf if weight_decay == 0 else batch / (lr * weight_decay * tokens)


def weight_decay_for(timescale: float, batch: float, lr: float, tokens: float) -> float:
    """The λ that gives AdamW timescale τ at (B, η, D): B / (η·τ·D); 0 for τ = +inf."""
    _positive(batch=batch, lr=lr, tokens=tokens, timescale=timescale)
    return 0.0 if math.isinf(timescale) else batch / (lr * timescale * tokens)


@dataclass(frozen=True)
class Setting:
    """Where a run sits on the axes beside width: tokens per step (its batch) and steps."""

    batch_tokens: int
    steps: int

    @property
    def tokens(self) -> int:
        return self.batch_tokens * self.steps


def carry(
    lr: float,
    weight_decay: float,
    proxy: Setting,
    target: Setting,
    *,
    beta: float,
    kappa: float = SQRT_RULE,
) -> tuple[float, float]:
    """The target's (η, λ) from the proxy's tuned ones: η by the length rule then the batch rule
    (the batch rule at fixed tokens, the length rule for the tokens that changed), λ at the
    proxy's AdamW timescale."""
    tau = adamw_timescale(proxy.batch_tokens, lr, weight_decay, proxy.tokens)
    at_length = horizon_lr(lr, proxy.tokens, target.tokens, beta)
    new_lr = batch_lr(at_length, proxy.batch_tokens, target.batch_tokens, kappa)
    return new_lr, weight_decay_for(tau, target.batch_tokens, new_lr, target.tokens)


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
