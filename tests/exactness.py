"""What "computes the same function" means in the growth tests: the tolerances, in one place."""

import torch

from sweep.core.model import GPT, GPTConfig

IDX = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(1))  # vocab 64, T 16
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}  # float32: relative to the logits' scale


def max_diff(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> float:
    """max |a - b|, for float32 divided by max(1, max |a|) (an ulp of |a| ~ 34 is 4e-6)."""
    diff = (a - b).abs().max().item()
    return diff if dtype == torch.float64 else diff / max(1.0, a.abs().max().item())


def logits(cfg: GPTConfig, state: dict, dtype: torch.dtype) -> torch.Tensor:
    """The logits of `GPT(cfg)` holding `state`, in `dtype`, on the shared token batch."""
    model = GPT(cfg).to(dtype)
    model.load_state_dict(state)
    with torch.no_grad():
        return model(IDX)


def shapes(state: dict) -> dict:
    return {k: tuple(v.shape) for k, v in state.items()}
