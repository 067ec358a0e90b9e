"""State dicts of any model (`sweep.core.models`): their shapes, a check that one fits a config,
a seeded fresh init, and block names. Shared by every growth operator; pure, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from sweep.core import models
from sweep.core.models import ModelConfig, state_shapes

State = dict[str, torch.Tensor]
__all__ = [
    "State",
    "block_of",
    "check_same",
    "check_state",
    "fresh_init",
    "move_blocks",
    "state_shapes",
]


def check_same(source: ModelConfig, target: ModelConfig, fields: tuple[str, ...]) -> None:
    """ValueError naming the first of `fields` in which the two models differ: a growth
    operator only widens a model, everything else about it stays."""
    for name in fields:
        a, b = getattr(source, name), getattr(target, name)
        if a != b:
            raise ValueError(
                f"model.{name} must be the same to grow a model: source {a!r}, target {b!r}"
            )


def check_state(state: dict[str, torch.Tensor], cfg: ModelConfig) -> None:
    """ValueError unless `state` has exactly the keys and shapes of the model of `cfg`."""
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


def fresh_init(cfg: ModelConfig, seed: int) -> dict[str, torch.Tensor]:
    """State of the model of `cfg` built under `torch.manual_seed(seed)`; the global RNG is
    restored."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return models.build_model(cfg).state_dict()


def block_of(name: str) -> tuple[int, str] | None:
    """('blocks.3.mlp.fc.weight') -> (3, 'mlp.fc.weight'); None outside the blocks."""
    if not name.startswith("blocks."):
        return None
    index, rest = name.removeprefix("blocks.").split(".", 1)
    return int(index), rest


BlockPlacement = Callable[[int, str, torch.Tensor], Iterable[tuple[int, torch.Tensor]]]


def move_blocks(state: State, place: BlockPlacement) -> State:
    """A state with every tensor outside the blocks copied and each block tensor put where
    `place(index, name within the block, tensor)` says: (new block index, tensor) pairs, one
    per copy (the operators that add or repeat blocks)."""
    out = {}
    with torch.no_grad():
        for name, t in state.items():
            block = block_of(name)
            if block is None:
                out[name] = t.clone()
                continue
            index, rest = block
            for new_index, tensor in place(index, rest, t):
                out[f"blocks.{new_index}.{rest}"] = tensor
    return out
