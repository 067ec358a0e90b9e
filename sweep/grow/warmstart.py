"""Warm-start methods: carry a trained source model's weights to the target (docs/methods.md §4-6).

Pure functions on state dicts and configs; `sweep.stages.target` trains the source and the target.

- `shrink_pad_perturb`: pad0(λ·θ) + σ·θ_init (§4). Not function-preserving unless λ=1, σ=0.
- `function_preserving`: zero where §5 requires it, every other new entry from the target's µP
  init (Gesmundo & Maile). The grown model computes the source's function.
- `rc_sampling`: each new unit a copy of a source unit, sums over grown inputs divided by N/n
  (§6); `sampling=stratified` (exact, HyperCloning's tiling) or `iid`, optional `noise`.
- `stack`: the source has n_layer / `stack_factor` blocks; they are stacked (G_stack), then grown
  in width as `function_preserving`. Not function-preserving.
- `cold`: nothing to grow; the target starts from a fresh µP init.

A custom model (`sweep.core.custom`) grows by `shrink_pad_perturb` along the width dimensions
mup infers (`sweep.grow.pad_inferred`) or starts cold; the other methods need the GPT's heads
and blocks and refuse it.

Every method returns a state for the target's model: the target's µP config, multipliers and
optimizer, with the proxy's tuned HPs unchanged; the grown tensors are rescaled for the
target's width-dependent multipliers by the operators themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from sweep.core.models import ModelConfig, build_model, is_builtin
from sweep.core.train import OptimConfig, lr_factor
from sweep.grow.choices import Method
from sweep.grow.function_preserving import expand
from sweep.grow.pad import grow_state
from sweep.grow.pad_inferred import grow_inferred
from sweep.grow.rc_sampling import resample_width
from sweep.grow.shrink_pad_perturb import shrink_pad_perturb
from sweep.grow.stack import stack_layers
from sweep.grow.state import State

ANY_MODEL = (Method.shrink_pad_perturb, Method.cold)  # the methods that need no architecture


def check_method(target: ModelConfig, method: str) -> None:
    if not is_builtin(target) and method not in ANY_MODEL:
        raise ValueError(
            f"warmstart.method={method} needs the built-in GPT's architecture (its heads and "
            "blocks); a custom model grows by warmstart.method=shrink_pad_perturb or starts "
            "cold (warmstart=cold)"
        )


def source_config(target: ModelConfig, method: str, width: int, stack_factor: int) -> ModelConfig:
    """The model a method grows from: the target's config at the source width (and, for `stack`,
    at 1/stack_factor of its depth, with CompleteP's base still the depth the HPs were tuned at,
    so the shallower source trains with the tuned HPs carried to its depth)."""
    check_method(target, method)
    cfg = target.at_width(width)
    if method == Method.stack:
        if stack_factor < 2 or target.n_layer % stack_factor:
            raise ValueError(
                f"warmstart.stack_factor ({stack_factor}) must be at least 2 and divide the "
                f"target's depth ({target.n_layer}: ladder.target_n_layer, or ladder.n_layer)"
            )
        cfg = replace(cfg, n_layer=target.n_layer // stack_factor, base_n_layer=target.depth_base)
    return cfg


def warm_optim(
    optim: OptimConfig, source: OptimConfig, source_steps: int, *, warmup: int | None, peak: float
) -> OptimConfig:
    """A warm run's optimizer: peak × the tuned LR, and its warmup (the ladder's length, or
    `warmup` steps; 0: none) rising from the LR its source ended at rather than from zero, since
    the model it starts from is trained."""
    lr = optim.lr * peak
    steps = optim.warmup_steps if warmup is None else warmup
    ended = source.lr * lr_factor(source_steps - 1, source, source_steps)
    return replace(
        optim, lr=lr, warmup_steps=steps, warmup_from=min(1.0, ended / lr) if steps else 0.0
    )


def pad_function_gap(state: State, source: ModelConfig, target: ModelConfig) -> float:
    """How far pad0, the padding under shrink-pad-perturb, is from keeping the source's
    function: max |Δ logits| / mean |logits| of the padded model against the source on a fixed
    batch. Round-off for the GPT and for a custom model whose shapes tell its whole structure
    (the Llama example); large when they cannot (fused parts of other sizes than the width, a
    LayerNorm's mean), which a warm start survives but a user should know."""
    pad = grow_state if is_builtin(source) else grow_inferred
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        idx = torch.randint(0, source.vocab_size, (2, min(source.seq_len, 16)))
        before, after = build_model(source), build_model(target)
    before.load_state_dict(state)
    after.load_state_dict(pad(state, source, target))
    with torch.no_grad():
        a, b = before(idx).float(), after(idx).float()
    return float((a - b).abs().max() / a.abs().mean().clamp_min(1e-12))


def _shrink_pad_perturb(state, source, target, *, seed, shrink, perturb) -> State:
    return shrink_pad_perturb(state, source, target, shrink=shrink, perturb=perturb, seed=seed)


def _function_preserving(state, source, target, *, seed) -> State:
    return expand(state, source, target, init="random", seed=seed)


def _rc_sampling(state, source, target, *, seed, sampling, noise) -> State:
    return resample_width(state, source, target, mode=sampling, noise=noise, seed=seed)


def _stack(state, source, target, *, seed, stack_factor) -> State:
    """Stack the source's blocks up to the target's depth (a stage of a progressive growth
    keeps the source's depth), then grow the width as `function_preserving`."""
    times = target.n_layer // source.n_layer
    if times not in (1, stack_factor) or times * source.n_layer != target.n_layer:
        raise ValueError(
            f"stack grows {source.n_layer} blocks into {source.n_layer * stack_factor} "
            f"(warmstart.stack_factor {stack_factor}), not into {target.n_layer}"
        )
    stacked, deeper = stack_layers(state, source, times)
    if deeper.depth_base == target.depth_base:  # the same model; spell its base as the target
        deeper = replace(deeper, base_n_layer=target.base_n_layer)
    return expand(stacked, deeper, target, init="random", seed=seed)


@dataclass(frozen=True)
class Grower:
    """A method that grows a model: its function and the `warmstart.*` settings it takes
    (recorded beside every warm run's result)."""

    grow: Callable[..., State]
    settings: tuple[str, ...] = ()


GROWERS: dict[Method, Grower] = {
    Method.shrink_pad_perturb: Grower(_shrink_pad_perturb, ("shrink", "perturb")),
    Method.function_preserving: Grower(_function_preserving),
    Method.rc_sampling: Grower(_rc_sampling, ("sampling", "noise")),
    Method.stack: Grower(_stack, ("stack_factor",)),
}


def method_settings(method: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings `method` takes, read from `settings` (`warmstart`); none for `cold`."""
    grower = GROWERS.get(method)  # a StrEnum key: the method's name finds it
    return {} if grower is None else {name: settings[name] for name in grower.settings}


def warm_start(
    method: str,
    state: State,
    source: ModelConfig,
    target: ModelConfig,
    settings: Mapping[str, Any],
    seed: int,
) -> State:
    """The target's initial state grown from `state` (of the source's model) by `method`, with
    the settings of `settings` (`warmstart`) that the method takes."""
    check_method(target, method)
    grower = GROWERS.get(method)
    if grower is None:
        growers = ", ".join(GROWERS)
        raise ValueError(
            f"warmstart.method must be one of {growers} to grow a model, got {method!r}"
        )
    return grower.grow(state, source, target, seed=seed, **method_settings(method, settings))
