"""How long a training step takes, from its FLOPs: the plan's model of a machine (docs/methods.md
§12). Pure: the measuring and the cache are `sweep.edges.throughput`.

A step of L layers that computes F FLOPs takes  L·overhead + F / rate  seconds. The rate is what
large steps reach; the per-layer overhead is what small ones pay regardless of their FLOPs (the
kernels launched, the optimizer's loop over parameters), which is most of a tiny rung's step on
a CPU. Two reference steps of the same depth and different widths give both numbers; a rate the
user states (a device's peak × an assumed MFU) gives the rate alone, with no overhead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sweep.core.train import RunConfig


@dataclass(frozen=True)
class Throughput:
    flops_per_s: float  # the rate of one device (one process) on a large step
    layer_overhead_s: float = 0.0  # seconds a step pays per layer whatever its FLOPs
    source: str = ""  # where the numbers come from, in words (the plan prints it)

    def __post_init__(self) -> None:
        if not self.flops_per_s > 0:
            raise ValueError(f"a throughput must be positive; got {self.flops_per_s} FLOP/s")
        if self.layer_overhead_s < 0:
            raise ValueError(f"a step's overhead must be >= 0; got {self.layer_overhead_s} s")

    def step_seconds(self, run: RunConfig, devices: int = 1) -> float:
        """One step of `run` spread over `devices` processes (data-parallel: each computes its
        share of the batch and pays the overhead once)."""
        per_step = run.flops / run.steps / max(1, devices)
        return run.model.n_layer * self.layer_overhead_s + per_step / self.flops_per_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fitted(
    layers: int, small: tuple[float, float], large: tuple[float, float], source: str
) -> Throughput:
    """The rate and overhead through two measured steps of `layers` layers, each
    (FLOPs, seconds). Timing noise that makes the larger step look no dearer per FLOP than the
    smaller gives the larger step's plain rate and no overhead."""
    (f_small, t_small), (f_large, t_large) = small, large
    if f_large > f_small and t_large > t_small:
        rate = (f_large - f_small) / (t_large - t_small)
        overhead = (t_small - f_small / rate) / layers
        if overhead >= 0:
            return Throughput(rate, overhead, source)
    return Throughput(f_large / t_large, 0.0, source)


def stated(peak_flops: float, mfu: float, source: str) -> Throughput:
    """A rate the user gives for a device: its peak × the utilisation assumed on it."""
    return Throughput(peak_flops * mfu, 0.0, source)
