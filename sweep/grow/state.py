"""State dicts of `GPT`: their shapes, a check that one fits a config, a seeded fresh init,
and block names. Shared by every growth operator; pure, no I/O."""

from __future__ import annotations

import torch

from sweep.core.model import GPT, GPTConfig

State = dict[str, torch.Tensor]


def state_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of `GPT(cfg)`, built on the meta device (no memory, no RNG draws)."""
    with torch.device("meta"):
        model = GPT(cfg)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def check_state(state: dict[str, torch.Tensor], cfg: GPTConfig) -> None:
    """ValueError unless `state` has exactly the keys and shapes of `GPT(cfg)`."""
    shapes = state_shapes(cfg)
    missing, unexpected = sorted(shapes.keys() - state.keys()), sorted(state.keys() - shapes.keys())
    if missing or unexpected:
        raise ValueError(
            f"source state does not match the source config's model: missing {missing}, "
            f"unexpected {unexpected}"
        )
    for name, shape in shapes.items():
        if tuple(state[name].shape) != shape:
            raise ValueError(
                f"source state {name} has shape {tuple(state[name].shape)}, the source config's "
                f"model has {shape}"
            )


def fresh_init(cfg: GPTConfig, seed: int) -> dict[str, torch.Tensor]:
    """State of `GPT(cfg)` built under `torch.manual_seed(seed)`; the global RNG is restored."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return GPT(cfg).state_dict()


def block_of(name: str) -> tuple[int, str] | None:
    """('blocks.3.mlp.fc.weight') -> (3, 'mlp.fc.weight'); None outside the blocks."""
    if not name.startswith("blocks."):
        return None
    index, rest = name.removeprefix("blocks.").split(".", 1)
    return int(index), rest
