"""Coordinate check (docs/methods.md §2): do activations keep their size as the model gets wider?

Trains every width of a ladder for a few steps at a deliberately large LR, recording the mean
|x| of each module's output before every update, and fits the slope of log(mean |x|) against
log(width) per module and step. Under µP the slopes stay near 0 (or below: the readout starts
at order 1/sqrt(m) and grows to order 1); under SP they grow with the step as updates blow up
with width. The check fails when the worst (largest) slope exceeds a threshold. Pure: no files.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from sweep.core.data import Corpus, train_batch
from sweep.core.model import lm_loss
from sweep.core.models import ModelConfig, build_model, config_of, tracked_modules
from sweep.core.sections import CoordVerdict
from sweep.core.train import OptimConfig, make_optimizer

# The largest slope µP may show: between what sound and broken models measure (docs/methods.md §2).
DEFAULT_THRESHOLD = 0.4


@dataclass(frozen=True)
class CoordCheck:
    parametrization: str
    widths: list[int]
    modules: list[str]
    scales: np.ndarray  # (module, step, width): mean |x| averaged over seeds
    slopes: np.ndarray  # (module, step): d log(mean |x|) / d log(width)

    def worst(self) -> tuple[str, int, float]:
        """(module, step, slope) of the largest slope: the module blowing up fastest."""
        i, t = np.unravel_index(np.argmax(self.slopes), self.slopes.shape)
        return self.modules[i], int(t), float(self.slopes[i, t])

    def passes(self, threshold: float = DEFAULT_THRESHOLD) -> bool:
        return self.worst()[2] <= threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "parametrization": self.parametrization,
            "widths": self.widths,
            "modules": self.modules,
            "scales": self.scales.tolist(),
            "slopes": self.slopes.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CoordCheck:
        return cls(
            data["parametrization"],
            [int(w) for w in data["widths"]],
            list(data["modules"]),
            np.asarray(data["scales"], dtype=float),
            np.asarray(data["slopes"], dtype=float),
        )

    def verdict(self, threshold: float = DEFAULT_THRESHOLD) -> CoordVerdict:
        """What was measured: the worst slope, where, and whether it is within `threshold`."""
        module, step, slope = self.worst()
        return CoordVerdict(
            worst_slope=slope,
            module=module,
            step=step,
            threshold=threshold,
            passes=slope <= threshold,
        )


def record_scales(
    model: torch.nn.Module,
    corpus: Corpus,
    optim: OptimConfig,
    steps: int,
    batch_size: int,
    seed: int,
    device: str = "cpu",
) -> dict[str, list[float]]:
    """Mean |output| of every tracked module in the forward pass before each of `steps` updates
    (averaged over the calls of a module called several times a pass; of a tuple, its first
    element, as a Hugging Face block returns its hidden states; a module whose output is no
    tensor is left out)."""
    seen: dict[str, list[float]] = {name: [] for name in tracked_modules(model)}

    def record(name: str, output: object) -> None:
        if isinstance(output, (tuple, list)) and output:  # a block's (hidden states, cache)
            output = output[0]
        if isinstance(output, torch.Tensor) and output.is_floating_point():
            seen[name].append(output.detach().abs().mean().item())

    hooks = [
        module.register_forward_hook(lambda _m, _i, out, name=name: record(name, out))
        for name, module in tracked_modules(model).items()
    ]
    model.to(device)
    optimizer = make_optimizer(model, optim)
    try:
        for step in range(steps):
            x, y = train_batch(corpus.train, step, seed, batch_size, config_of(model).seq_len)
            loss = lm_loss(model, x.to(device), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        for hook in hooks:
            hook.remove()
    return {
        name: np.asarray(values).reshape(steps, -1).mean(axis=1).tolist()
        for name, values in seen.items()
        if values and len(values) % steps == 0
    }


def coord_check(
    base: ModelConfig,
    widths: list[int],
    optim: OptimConfig,
    corpus: Corpus,
    steps: int = 5,
    batch_size: int = 8,
    seeds: tuple[int, ...] = (0, 1),
    device: str = "cpu",
) -> CoordCheck:
    """Run the check for `base.parametrization` over `widths` (the smallest is the µP base),
    in float32 on `device` (the init is drawn on the CPU, so the device does not change it)."""
    if len(widths) < 3 or sorted(widths) != list(widths) or len(set(widths)) != len(widths):
        raise ValueError(f"widths must be at least 3 strictly increasing values, got {widths}")
    per_width = []
    for width in widths:
        cfg = replace(base.at_width(widths[0]), d_model=width)
        runs = []
        for seed in seeds:
            torch.manual_seed(seed)
            runs.append(
                record_scales(build_model(cfg), corpus, optim, steps, batch_size, seed, device)
            )
        per_width.append({name: np.mean([r[name] for r in runs], axis=0) for name in runs[0]})
    modules = list(per_width[0])
    scales = np.array([[w[name] for w in per_width] for name in modules])  # (module, width, step)
    scales = scales.transpose(0, 2, 1)
    log_w = np.log(widths)
    slopes = np.array([[np.polyfit(log_w, np.log(s), 1)[0] for s in mod] for mod in scales])
    return CoordCheck(base.parametrization, list(widths), modules, scales, slopes)
