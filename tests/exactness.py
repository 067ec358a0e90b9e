"""What "computes the same function" means in the growth tests (issue 5's tolerances)."""

import torch

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}  # float32: relative to the logits' scale


def max_diff(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> float:
    """max |a - b|, for float32 divided by max(1, max |a|) (an ulp of |a| ~ 34 is 4e-6)."""
    diff = (a - b).abs().max().item()
    return diff if dtype == torch.float64 else diff / max(1.0, a.abs().max().item())
